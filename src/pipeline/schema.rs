//! The JSON Schema of the pipeline format, for editors (yaml-language-server) to complete and
//! check `.gantry/*.yml`. A test keeps it in step with the reader's keys.

use serde_json::{Value, json};

/// The schema as JSON (draft 2020-12).
pub fn json_schema() -> Value {
    let string_or_list = json!({
        "oneOf": [
            { "type": "string" },
            { "type": "array", "items": { "type": "string" } }
        ]
    });
    let scalar_map = json!({
        "type": "object",
        "additionalProperties": { "type": ["string", "number", "boolean"] }
    });
    let matrix_value = json!({
        "type": ["string", "number", "boolean"],
        "pattern": "^[A-Za-z0-9._/:+-]{1,64}$"
    });
    let matrix_entry = json!({
        "type": "object",
        "additionalProperties": matrix_value.clone()
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://gantry.dev/schema/pipeline.json",
        "title": "Gantry pipeline",
        "description": "A pipeline file in .gantry/: the stages to run for pushes and pull requests.",
        "type": "object",
        "additionalProperties": false,
        "required": ["stages"],
        "properties": {
            "name": {
                "description": "Pipeline name; the status context is gantry/<name>. Defaults to the file name.",
                "type": "string",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
            },
            "on": {
                "description": "Events that start the pipeline. Without `on`: pushes to any branch and pull requests.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "push": {
                        "type": ["object", "null"],
                        "additionalProperties": false,
                        "properties": {
                            "branches": string_or_list,
                            "tags": string_or_list,
                            "paths": string_or_list
                        }
                    },
                    "pull_request": {
                        "type": ["object", "null"],
                        "additionalProperties": false,
                        "properties": {
                            "branches": string_or_list,
                            "paths": string_or_list
                        }
                    },
                    "manual": {
                        "description": "Runs started from the page or POST /api/repos/{owner}/{repo}/runs.",
                        "type": ["object", "null"],
                        "additionalProperties": false
                    },
                    "schedule": {
                        "description": "Runs on a clock: five-field cron patterns in UTC, read from the default branch's files.",
                        "type": "array",
                        "maxItems": 10,
                        "items": {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["cron"],
                            "properties": {
                                "cron": { "type": "string", "description": "e.g. 0 3 * * *" },
                                "branch": { "type": "string", "description": "Default: the repo's default branch." }
                            }
                        }
                    }
                }
            },
            "env": scalar_map,
            "runs_on": {
                "type": "array",
                "maxItems": 32,
                "items": { "type": "string", "pattern": "^[A-Za-z0-9._/:=-]{1,64}$" }
            },
            "cache": {
                "description": "Folders restored before the first stage and saved after the pipeline succeeds, on the runner's engine, per repo and key.",
                "type": "array",
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["key", "paths"],
                    "properties": {
                        "key": { "type": "string", "description": "e.g. cargo-${hash:Cargo.lock}" },
                        "restore_keys": string_or_list.clone(),
                        "paths": string_or_list.clone()
                    }
                }
            },
            "services": {
                "description": "Containers started before the first stage on a network of the pipeline's own; stages reach each by its name.",
                "type": "array",
                "maxItems": 10,
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "image"],
                    "properties": {
                        "name": { "type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$" },
                        "image": { "type": "string" },
                        "env": scalar_map.clone(),
                        "command": { "type": "array", "minItems": 1, "items": { "type": "string" } },
                        "ready": {
                            "type": "object",
                            "additionalProperties": false,
                            "properties": {
                                "cmd": { "type": "string", "description": "Run in the service with sh -c; ready once it exits 0." },
                                "port": { "type": "integer", "minimum": 1, "maximum": 65535 },
                                "timeout": { "type": "string", "default": "60s" }
                            },
                            "oneOf": [ { "required": ["cmd"] }, { "required": ["port"] } ]
                        }
                    }
                }
            },
            "stages": {
                "type": "array",
                "minItems": 1,
                "items": { "$ref": "#/$defs/stage" }
            }
        },
        "$defs": {
            "stage": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name"],
                "oneOf": [
                    { "required": ["run", "image"] },
                    { "required": ["build"] },
                    { "required": ["validate"] },
                    { "required": ["bump"] }
                ],
                "properties": {
                    "name": { "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$" },
                    "image": { "description": "Image a `run` stage runs in.", "type": "string" },
                    "run": { "description": "Commands, run with `sh -e`.", "type": "string" },
                    "build": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["image"],
                        "properties": {
                            "context": { "type": "string", "default": "." },
                            "dockerfile": { "type": "string", "default": "Dockerfile" },
                            "image": { "type": "string" },
                            "tags": { "type": "array", "items": { "type": "string" } },
                            "args": scalar_map,
                            "target": { "type": "string" },
                            "labels": scalar_map,
                            "push": { "type": "boolean" }
                        }
                    },
                    "validate": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["paths"],
                        "properties": { "paths": string_or_list, "exclude": string_or_list }
                    },
                    "bump": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["repo", "file"],
                        "properties": {
                            "repo": { "type": "string" },
                            "branch": { "type": "string", "default": "main" },
                            "file": { "type": "string" },
                            "image": { "type": "string" },
                            "key": { "type": "string" },
                            "mode": { "enum": ["commit", "pull_request"], "default": "commit" },
                            "pin": { "enum": ["tag", "digest", "tag@digest"], "default": "tag" }
                        }
                    },
                    "needs": { "type": "array", "items": { "type": "string" } },
                    "when": {
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {
                            "event": {
                                "oneOf": [
                                    { "enum": ["push", "pull_request", "tag", "manual"] },
                                    { "type": "array", "items": { "enum": ["push", "pull_request", "tag", "manual"] } }
                                ]
                            },
                            "branch": string_or_list,
                            "tag": string_or_list
                        }
                    },
                    "env": scalar_map,
                    "secrets": { "type": "array", "items": { "type": "string" } },
                    "timeout": { "type": "string", "description": "e.g. 20m, 1h 30m" },
                    "retries": { "type": "integer", "minimum": 0, "maximum": 5 },
                    "matrix": {
                        "description": "Axes whose combinations each run as a stage named `name (axis=value, …)`; `${matrix.AXIS}` in image, run and env; MATRIX_<AXIS> in the environment. At most 256 combinations.",
                        "type": "object",
                        "minProperties": 1,
                        "properties": {
                            "include": { "type": "array", "items": matrix_entry.clone() },
                            "exclude": { "type": "array", "items": matrix_entry }
                        },
                        "additionalProperties": {
                            "type": "array",
                            "minItems": 1,
                            "items": matrix_value.clone()
                        }
                    },
                    "max_parallel": {
                        "description": "How many of the matrix's stages run at once.",
                        "type": "integer",
                        "minimum": 1
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys the reader accepts at a level, from its own "expected one of" message.
    fn reader_keys(yaml: &str) -> Vec<String> {
        let err = crate::pipeline::parse("t.yml", yaml).unwrap_err();
        let message = &err[0].message;
        let list = message
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("no key list in `{message}`"));
        let mut keys: Vec<String> = list
            .split(", ")
            .map(|k| k.trim_matches('`').to_owned())
            .collect();
        keys.sort();
        keys
    }

    fn schema_keys(value: &Value) -> Vec<String> {
        let mut keys: Vec<String> = value["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn schema_has_exactly_the_keys_the_reader_accepts() {
        let schema = json_schema();
        let stage = &schema["$defs"]["stage"];
        let unknown = "zzzzzzzzzzzz: 1";
        let cases = [
            (format!("{unknown}\nstages: []"), &schema),
            (format!("stages:\n  - name: a\n    {unknown}"), stage),
            (
                format!("stages:\n  - name: a\n    build: {{image: x, {unknown}}}"),
                &stage["properties"]["build"],
            ),
            (
                format!("stages:\n  - name: a\n    bump: {{repo: x, file: y, {unknown}}}"),
                &stage["properties"]["bump"],
            ),
            (
                format!("stages:\n  - name: a\n    when: {{{unknown}}}"),
                &stage["properties"]["when"],
            ),
            (
                format!("on: {{{unknown}}}\nstages: []"),
                &schema["properties"]["on"],
            ),
            (
                format!("on: {{push: {{{unknown}}}}}\nstages: []"),
                &schema["properties"]["on"]["properties"]["push"],
            ),
            (
                format!("on: {{pull_request: {{{unknown}}}}}\nstages: []"),
                &schema["properties"]["on"]["properties"]["pull_request"],
            ),
        ];
        for (yaml, schema_level) in cases {
            assert_eq!(reader_keys(&yaml), schema_keys(schema_level), "{yaml}");
        }
    }
}

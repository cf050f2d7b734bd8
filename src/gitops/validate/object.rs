//! Kubernetes documents judged as cluster objects: which documents are objects at all, the
//! rules each object must meet, and the identity two objects clash on.
//!
//! Not every document with `apiVersion` and `kind` is sent to a cluster. Kustomize's own
//! files, kubeadm or kubelet configs, kpt's `Kptfile`, kind's cluster config, a kubeconfig
//! and tool configs modelled on Kubernetes are read by a client; none has, or needs, a
//! `metadata.name`, and reporting one as a nameless object is a false alarm.

use super::document::{Head, text};
use crate::pipeline::Diagnostic;

/// What two objects clash on, as Kustomize tells resources apart: API version, kind,
/// namespace (none for the cluster-scoped kinds it knows) and name. Whether no namespace is
/// `default` depends on who applies the object: Kustomize says so, an Argo CD directory app
/// uses its destination namespace; see `in_kustomize_terms`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ObjectId {
    pub api_version: String,
    pub kind: String,
    namespace: String,
    pub name: String,
}

impl ObjectId {
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> Self {
        let mut id = ObjectId {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: String::new(),
            name: name.to_owned(),
        };
        id.set_namespace(namespace);
        id
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn set_namespace(&mut self, namespace: &str) {
        let ignored = self.is_cluster_scoped();
        self.namespace = if ignored { "" } else { namespace }.to_owned();
    }

    /// The identity as `kustomize build` compares it, where no namespace is `default`.
    pub fn in_kustomize_terms(&self) -> ObjectId {
        let mut id = self.clone();
        if id.namespace == "default" {
            id.namespace.clear();
        }
        id
    }

    pub fn is_cluster_scoped(&self) -> bool {
        CLUSTER_SCOPED_KINDS.contains(&self.kind.as_str())
    }
}

/// A named cluster object, where its name is written.
#[derive(Debug, Clone)]
pub(super) struct Object {
    /// Its identity, as rendered when it is part of an overlay.
    pub id: ObjectId,
    /// Its identity as the file writes it, before an overlay's transformers.
    pub written: ObjectId,
    pub at: Diagnostic,
    /// Its document's index in the file, which with `at.file` tells one document from another
    /// copy of the same object.
    pub document: usize,
    /// When rendered for an overlay: the overlay's entry (an index into its references) that
    /// brought it in.
    pub via: usize,
}

impl Object {
    pub fn is_same_document(&self, other: &Object) -> bool {
        self.document == other.document && self.at.file == other.at.file
    }

    /// The finding for this object when `first` already claims its identity.
    pub fn clash_with(&self, first: &Object, context: &str) -> Diagnostic {
        let id = &self.id;
        let scope = match id.namespace() {
            "" => String::new(),
            namespace => format!(" in namespace `{namespace}`"),
        };
        let rendered = if id.name == self.written.name {
            String::new()
        } else {
            format!(" (rendered as `{}`)", id.name)
        };
        Diagnostic {
            message: format!(
                "{} `{}`{rendered}{scope} is already defined at {}:{}:{}{context}",
                id.kind, self.written.name, first.at.file, first.at.line, first.at.column
            ),
            ..self.at.clone()
        }
    }
}

/// What the documents of one manifest file turned out to be.
#[derive(Debug, Default)]
pub(super) struct Judged {
    pub objects: Vec<Object>,
    pub client_configs: usize,
    pub findings: Vec<Diagnostic>,
}

/// Judges each document of a manifest file: cluster objects must have an `apiVersion`, a
/// `kind` and a name; client-side configs and plain YAML are left alone.
pub(super) fn judge(relative: &str, documents: &[serde_saphyr::Spanned<Head>]) -> Judged {
    let mut judged = Judged::default();
    for (index, document) in documents.iter().enumerate() {
        let head = &document.value;
        if !head.looks_like_object() {
            continue;
        }
        let at = |line: u64, column: u64, message: &str| {
            Diagnostic::new(relative, line, column, message)
        };
        let start = (document.referenced.line(), document.referenced.column());
        let api_version = text(head.api_version.as_ref());
        match (&head.api_version, api_version) {
            (_, Some(_)) => {}
            (Some(v), None) => judged.findings.push(at(
                v.referenced.line(),
                v.referenced.column(),
                "`apiVersion` must be a non-empty string",
            )),
            (None, None) => judged.findings.push(at(
                start.0,
                start.1,
                "Kubernetes document has no `apiVersion`",
            )),
        }
        let Some(kind) = text(head.kind.as_ref()) else {
            judged.findings.push(match &head.kind {
                Some(k) => at(
                    k.referenced.line(),
                    k.referenced.column(),
                    "`kind` must be a non-empty string",
                ),
                None => at(start.0, start.1, "Kubernetes document has no `kind`"),
            });
            continue;
        };
        if let Some(api_version) = api_version
            && api_group(api_version).is_none_or(|group| is_client_side(group, kind, head))
        {
            judged.client_configs += 1;
            continue;
        }
        if kind == "List" {
            continue;
        }
        let metadata = head.metadata.as_ref().map(|m| &m.value);
        let name = metadata.and_then(|m| m.name.as_ref());
        let Some(name_text) = text(name) else {
            // A generated name is unique by construction: Helm hooks and sync-wave Jobs use it.
            if text(metadata.and_then(|m| m.generate_name.as_ref())).is_none() {
                let (line, column) = head
                    .metadata
                    .as_ref()
                    .map_or(start, |m| (m.referenced.line(), m.referenced.column()));
                judged
                    .findings
                    .push(at(line, column, &format!("{kind} has no `metadata.name`")));
            }
            continue;
        };
        let name = name.expect("a name has text only if it is there");
        let id = ObjectId::new(
            api_version.unwrap_or_default(),
            kind,
            text(metadata.and_then(|m| m.namespace.as_ref())).unwrap_or_default(),
            name_text,
        );
        judged.objects.push(Object {
            written: id.clone(),
            id,
            at: at(name.referenced.line(), name.referenced.column(), ""),
            document: index,
            via: 0,
        });
    }
    judged
}

/// The API group of an `apiVersion` (`""` for the core group's `v1`); `None` when the value
/// is no Kubernetes API version at all, as Kustomize's `builtin` plugin configs have.
fn api_group(api_version: &str) -> Option<&str> {
    match api_version.split_once('/') {
        Some((group, _)) => Some(group),
        None if is_version(api_version) => Some(""),
        None => None,
    }
}

/// `v1`, `v2beta1`, `v1alpha3`: the shape of a Kubernetes API version.
fn is_version(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let rest = &rest[digits..];
    rest.is_empty()
        || ["alpha", "beta"].iter().any(|level| {
            rest.strip_prefix(level)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// API groups a cluster serves without a CRD. A document of these without `metadata` is an
/// object someone forgot to name; a document of any other group without `metadata` at all is
/// a tool's input modelled on Kubernetes (istioctl's `IstioOperator`, kind's `Cluster`): a
/// custom resource meant for a cluster keeps at least its `metadata.name`.
const CLUSTER_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "policy",
    "autoscaling",
    "extensions",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Groups of Kubernetes' own client-side files: kubeadm's configs, audit policies,
/// credential plugins, API server side files.
const CLIENT_GROUPS: &[&str] = &[
    "kubeadm.k8s.io",
    "audit.k8s.io",
    "client.authentication.k8s.io",
    "apiserver.k8s.io",
    "config.kubernetes.io",
];

fn is_client_side(group: &str, kind: &str, head: &Head) -> bool {
    // A CRD's group has a dot; a dotless group the cluster does not serve is a tool's
    // (Skaffold's `skaffold/v4beta6`).
    let no_cluster_api = !group.contains('.') && !CLUSTER_GROUPS.contains(&group);
    no_cluster_api
        || kind == "Kptfile"
        || (group.is_empty() && kind == "Config")
        || CLIENT_GROUPS.contains(&group)
        || group.ends_with(".config.k8s.io")
        || group.ends_with(".config.kubernetes.io")
        || group.split('.').any(|label| label == "plugin")
        || (head.metadata.is_none() && !CLUSTER_GROUPS.contains(&group))
}

/// Kinds Kustomize knows to be cluster-scoped: its `namespace:` leaves them be, and their
/// identity has no namespace.
pub(super) const CLUSTER_SCOPED_KINDS: &[&str] = &[
    "APIService",
    "CSIDriver",
    "CSINode",
    "CertificateSigningRequest",
    "ClusterRole",
    "ClusterRoleBinding",
    "ComponentStatus",
    "CustomResourceDefinition",
    "FlowSchema",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "Namespace",
    "Node",
    "PersistentVolume",
    "PodSecurityPolicy",
    "PriorityClass",
    "PriorityLevelConfiguration",
    "RuntimeClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "ValidatingWebhookConfiguration",
    "VolumeAttachment",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_split_into_groups() {
        assert_eq!(api_group("v1"), Some(""));
        assert_eq!(api_group("apps/v1"), Some("apps"));
        assert_eq!(api_group("v2beta1"), Some(""));
        assert_eq!(api_group("builtin"), None);
        assert_eq!(api_group("v"), None);
        assert_eq!(api_group("v1gamma"), None);
        assert_eq!(
            api_group("kustomize.config.k8s.io/v1beta1"),
            Some("kustomize.config.k8s.io")
        );
    }
}

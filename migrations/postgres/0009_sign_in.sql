-- Keys Gantry generates once and every replica shares (the session key when
-- `auth.session_key` is not set). Values are hex.
CREATE TABLE server_keys (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- Signed-in people. `id` is the SHA-256 of the secret in the cookie, so the store never holds
-- a usable cookie. `token` is the forge's access token, encrypted with the session key;
-- NULL for a sign-in with the API token (`forge` NULL as well).
CREATE TABLE sessions (
    id         TEXT   NOT NULL PRIMARY KEY,
    forge      TEXT,
    user_id    TEXT   NOT NULL,
    login      TEXT   NOT NULL,
    token      TEXT,
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- OAuth sign-ins under way: the `state` sent to the forge (hashed), the PKCE verifier
-- (encrypted), and where to go afterwards. Each is used once.
CREATE TABLE sign_ins (
    state      TEXT   NOT NULL PRIMARY KEY,
    forge      TEXT   NOT NULL,
    verifier   TEXT   NOT NULL,
    next       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- What the forge said a person may do with a repo, trusted for `auth.permission_ttl`.
CREATE TABLE permissions (
    forge      TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    repo       TEXT   NOT NULL,
    permission TEXT   NOT NULL,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (forge, user_id, repo)
);

-- Each repo's visibility as its latest delivery reported it.
CREATE TABLE repo_visibility (
    forge      TEXT   NOT NULL,
    repo       TEXT   NOT NULL,
    visibility TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (forge, repo)
);

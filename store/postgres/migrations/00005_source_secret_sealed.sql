-- Source webhook secrets are sealed at rest (AES-256-GCM under
-- KILN_SECRET_KEY, like destination credentials): secret_sealed holds the
-- sealed form, and secret is emptied. Rows written before keep their
-- plaintext secret until a server with the key starts and seals them
-- (Keys.SealSourceSecrets), since SQL cannot encrypt.

-- +goose Up
ALTER TABLE sources ADD COLUMN secret_sealed BYTEA;

-- +goose Down
ALTER TABLE sources DROP COLUMN secret_sealed;

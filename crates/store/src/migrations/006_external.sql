-- Schema version 6: accounts whose password (and name and role) live in a directory or an
-- identity provider. source 'local': a password account of this server (every account
-- before version 6). 'ldap:NAME' / 'oidc:NAME': signed in through the [[ldap]] / [[oidc]]
-- provider NAME; subject is the provider's stable id of the person (the directory entry's
-- DN, the OpenID "sub"), password_hash is '!' and never verifies.
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local'
    CHECK (source = 'local' OR source LIKE 'ldap:_%' OR source LIKE 'oidc:_%');
ALTER TABLE users ADD COLUMN subject TEXT
    CHECK ((source = 'local') = (subject IS NULL));
CREATE UNIQUE INDEX users_by_subject ON users (source, subject) WHERE subject IS NOT NULL;

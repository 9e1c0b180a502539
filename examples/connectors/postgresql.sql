-- The README's connector walk-through: what the PostgreSQL side needs, made as a superuser.
-- Run again, it starts over (the roles are dropped first).
DROP ROLE IF EXISTS alice;
DROP ROLE IF EXISTS mailbox_searchers;
DROP ROLE IF EXISTS jitpam_connector;

-- The privilege a grant of Exchange\Mailbox Search gives: membership in this role.
CREATE ROLE mailbox_searchers NOLOGIN;
-- Alice's login, as jitpam maps her (login = "{local_lower}"): no privilege of her own.
CREATE ROLE alice LOGIN;
-- jitpam's own account: it may grant and revoke mailbox_searchers and end sessions, nothing more.
CREATE ROLE jitpam_connector LOGIN PASSWORD 'connector-secret' NOSUPERUSER NOCREATEROLE;
GRANT mailbox_searchers TO jitpam_connector WITH ADMIN OPTION;
GRANT pg_signal_backend TO jitpam_connector;

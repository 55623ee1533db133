-- 013: API tokens.  A token is "mlc_" followed by 64 hex digits (32 random
-- bytes); only its SHA-256 (hex) is stored.  Each has an owner (the
-- ownerid it acts as), a scope (read < write < admin), an optional expiry
-- and a revocation time.  Times are the database's clock (UTC).
--
-- Tokens are made and revoked by the procedures below only, from the SQL
-- console or through scripts/mlc token (docs/SECURITY.md); token_list
-- shows them without their hashes.
CREATE TABLE tokens (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    token_hash   CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    ownerid      VARCHAR(255) NOT NULL,
    scope        VARCHAR(8)   NOT NULL,
    note         VARCHAR(255) NULL,
    created_at   DATETIME(6)  NOT NULL,
    expires_at   DATETIME(6)  NULL,
    revoked_at   DATETIME(6)  NULL,
    last_used_at DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY tokens_hash (token_hash),
    KEY tokens_owner (ownerid),
    CONSTRAINT tokens_scope CHECK (scope IN ('read', 'write', 'admin')),
    CONSTRAINT tokens_owner_nonempty CHECK (ownerid <> '')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE VIEW token_list AS
    SELECT id, ownerid, scope, note, created_at, last_used_at, expires_at, revoked_at,
           CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
                WHEN expires_at IS NOT NULL AND expires_at <= UTC_TIMESTAMP(6) THEN 'expired'
                ELSE 'valid' END AS state
    FROM tokens;

DELIMITER //

-- The one place a token is made: p_seconds NULL means no expiry.  Returns
-- one row (id, ownerid, scope, expires_at, token); the token itself is
-- shown this once and never stored.
CREATE PROCEDURE mlc_token_issue(IN p_owner VARCHAR(255), IN p_scope VARCHAR(8),
                                 IN p_seconds BIGINT, IN p_note VARCHAR(255))
    MODIFIES SQL DATA
BEGIN
    DECLARE v_token VARCHAR(80);
    DECLARE v_now DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    IF p_owner IS NULL OR p_owner = '' THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the owner must not be empty';
    END IF;
    IF p_scope IS NULL OR p_scope NOT IN ('read', 'write', 'admin') THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the scope must be read, write or admin';
    END IF;
    IF p_seconds IS NOT NULL AND p_seconds <= 0 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the lifetime must be positive (NULL: no expiry)';
    END IF;
    SET v_token = CONCAT('mlc_', LOWER(HEX(RANDOM_BYTES(32))));
    INSERT INTO tokens (token_hash, ownerid, scope, note, created_at, expires_at)
        VALUES (SHA2(v_token, 256), p_owner, p_scope, p_note, v_now,
                IF(p_seconds IS NULL, NULL, v_now + INTERVAL p_seconds SECOND));
    SELECT id, ownerid, scope, expires_at, v_token AS token
        FROM tokens WHERE id = LAST_INSERT_ID();
END //

-- CALL mlc_token_add('agent-1', 'write', NULL): p_days NULL means no
-- expiry, else the token expires that many days from now.
CREATE PROCEDURE mlc_token_add(IN p_owner VARCHAR(255), IN p_scope VARCHAR(8), IN p_days INT)
    MODIFIES SQL DATA
BEGIN
    IF p_days IS NOT NULL AND p_days <= 0 THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the number of days must be positive (NULL: no expiry)';
    END IF;
    CALL mlc_token_issue(p_owner, p_scope, p_days * 86400, NULL);
END //

-- CALL mlc_token_revoke('mlc_...') or CALL mlc_token_revoke('42'): revoke
-- by the token itself or by its id.  Returns the token's row (as
-- token_list shows it); an unknown token or id is an error.  Revoking
-- twice keeps the first revocation time.
CREATE PROCEDURE mlc_token_revoke(IN p_token_or_id VARCHAR(255))
    MODIFIES SQL DATA
BEGIN
    DECLARE v_id BIGINT UNSIGNED DEFAULT NULL;
    IF p_token_or_id REGEXP '^[0-9]{1,19}$' THEN
        SELECT id INTO v_id FROM tokens WHERE id = CAST(p_token_or_id AS UNSIGNED);
    ELSE
        SELECT id INTO v_id FROM tokens WHERE token_hash = SHA2(p_token_or_id, 256);
    END IF;
    IF v_id IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no such token';
    END IF;
    UPDATE tokens SET revoked_at = UTC_TIMESTAMP(6) WHERE id = v_id AND revoked_at IS NULL;
    SELECT * FROM token_list WHERE id = v_id;
END //

DELIMITER ;

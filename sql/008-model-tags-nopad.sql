-- 008: tags compare literally.  utf8mb4_bin ignores trailing spaces when
-- comparing, so "a" and "a " (and, now that empty tags are stored, "" and
-- " ") were one key: a model tagged with both failed with a duplicate
-- entry, and a search for one found the other.  No existing rows can
-- collide under the stricter collation.
ALTER TABLE model_tags
    MODIFY tag VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL;

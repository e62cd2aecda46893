-- A spool script: the admin API's requests go to a bucket of their own,
-- "admin" (a relay bucket with its own retention and token, say), the
-- rest stays where it was.  The bucket is a field of the record, so the
-- relay and the players see it too.  With a script of its own for that
-- bucket, the spool runs it next:
--
--     script /etc/replayforge/route-admin.lua;
--     bucket admin {
--         token_file /etc/replayforge/admin.token;
--         script     /etc/replayforge/redact.lua;
--     }

function transform(r)
    if r.kind == "http" and r.uri:sub(1, 10) == "/api/admin" then
        r.bucket = "admin"
    end

    return r
end

-- A spool script: no credentials leave the server.  The values of the
-- Authorization and Cookie request headers (any case, every occurrence)
-- become "[redacted]"; the headers themselves stay, so a replay still
-- shows that the request had them.  Records of other kinds have no
-- headers and pass as they are.
--
--     script /etc/replayforge/redact.lua;

local secret = { authorization = true, cookie = true }

function transform(r)
    for _, h in ipairs(r.headers or {}) do
        if secret[h[1]:lower()] then
            h[2] = "[redacted]"
        end
    end

    return r
end

-- A spool script: health checks are not worth keeping.  Requests whose
-- URI starts with /health (/health, /healthz, /health/db?full=1, ...)
-- are dropped (counted in script_dropped); everything else goes on
-- untouched, as the very same bytes.
--
--     script /etc/replayforge/drop-health.lua;

function transform(r)
    if r.kind == "http" and r.uri:sub(1, 7) == "/health" then
        return nil
    end

    return r
end

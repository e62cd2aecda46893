-- A sink script for rf-playerd's discord sink: only the answers with a
-- status of 500 or more go on, each turned into a "line" record that
-- holds the message's text; the sink shows it with the template
-- "{line}".  Everything else is dropped (returned nil) before it costs
-- a webhook call.
--
--     sink discord alerts {
--         webhook  ${DISCORD_WEBHOOK};
--         template "{line}";
--         script   /etc/replayforge/discord-5xx.lua;
--     }
--
-- A message line looks like "5xx: GET /api/x → 503 (web-1)".

function transform(r)
    if r.kind ~= "http" or (r.status or 0) < 500 then
        return nil
    end

    return {
        kind   = "line",
        id     = r.id,
        source = r.source,
        bucket = r.bucket,
        ts     = r.ts,
        line   = string.format("5xx: %s %s → %d (%s)", r.method or "-",
                               r.uri or "-", r.status, r.source or "-"),
    }
end

-- A bucket script for rf-playerd: "no traffic for N seconds".
--
-- transform() notes when the last record came and routes the records to
-- the sink named by `records`.  tick(), which the player calls every
-- script_tick (1s by default), also while the relay has nothing, returns
-- one alert line per quiet spell to the sink named by `alerts`, and
-- transform() one more when traffic is back.
--
-- N is rf-playerd's environment variable RF_QUIET_SECONDS, 300 when it
-- is not set.
--
--     bucket prod {
--         consumer alerts;
--         script   /etc/replayforge/no-traffic.lua;
--         sink discord alerts { webhook ${DISCORD_WEBHOOK};
--                               template "{line}"; }
--         sink file archive   { path /var/log/rf/prod.ndjson; }
--     }

local quiet = tonumber(rf.env("RF_QUIET_SECONDS") or "") or 300
local alerts = "alerts"
local records = "archive"

local last = rf.now()
local alerted = false

function transform(r)
    last = rf.now()
    r.sink = records

    if alerted then
        alerted = false
        return { r, { kind = "line", line = "traffic is back",
                      sink = alerts } }
    end

    return r
end

function tick()
    if alerted or rf.now() - last < quiet then
        return nil
    end

    alerted = true

    return { kind = "line", sink = alerts,
             line = string.format("no traffic for %d seconds", quiet) }
end

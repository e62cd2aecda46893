-- A spool script: keep the requests of 10% of the users, all of them.
-- The decision hangs on the X-User request header alone: the first 32
-- bits of its SHA-256 taken modulo 100, kept under PERCENT.  So a user
-- is kept or dropped for good, on every spool (the same hash everywhere)
-- and across restarts, and a replay shows whole sessions.
--
-- Requests without X-User (anonymous traffic, health checks, bots) are
-- all kept: they are not some user's, and dropping them would hide what
-- a sampling by user cannot see.  Drop them here, or before this script
-- with drop-health.lua, if they are too many.
--
--     script /etc/replayforge/sample.lua;

local PERCENT = 10

function transform(r)
    local user = rf.header(r, "X-User")

    if user == nil then
        return r
    end

    if tonumber(rf.sha256(user):sub(1, 8), 16) % 100 < PERCENT then
        return r
    end

    return nil
end

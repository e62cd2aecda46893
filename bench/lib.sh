# bench/lib.sh: shell functions the benches share; sourced, not run.
# Expects BUILD, dir (a scratch directory), pids (an array the caller's
# cleanup kills) and DRAIN_RECORDS.

# peak RSS, and the private part (the ring mapping is shared)
rss() {
    awk '/VmHWM/ { h = $2 } /RssAnon/ { a = $2 }
         END { printf "%d kB peak (%d kB private)", h, a }' "/proc/$1/status"
}

# drain BUFFER_DIR [rf-spoold args...]: a ring pre-filled with
# DRAIN_RECORDS 1 KB records by ringfill, drained into a fresh buffer in
# BUFFER_DIR; sets drain_rate (records/s), drain_rss and rec_bytes
drain() {
    local bdir=$1 ring=$dir/drain.ring db t0 t1 p n fill
    shift
    db=$bdir/rf-bench-drain.$$.db
    rm -f "$ring" "$db" "$db-wal" "$db-shm"
    fill=$("$BUILD/bench/ringfill" "$ring" 1g "$DRAIN_RECORDS" 1024)
    rec_bytes=$(sed -n 's/.*record_bytes=\([0-9]*\).*/\1/p' <<<"$fill")
    t0=$(date +%s.%N)
    "$BUILD/rf-spoold" -d --ring "$ring" --buffer "$db" --id drain \
        --max-buffer 8g "$@" 2> "$dir/drain.err" &
    p=$!
    pids+=($p)
    while :; do
        n=$("$BUILD/rf-spoold" --stats --buffer "$db" 2>/dev/null \
            | perl -MJSON::PP -e 'local $/; print JSON::PP->new->decode(<STDIN>)->{stored_total}, "\n"' \
            2>/dev/null || echo 0)
        [ "$n" -ge "$DRAIN_RECORDS" ] && break
        kill -0 "$p" 2>/dev/null || {
            echo "bench: rf-spoold exited:" >&2; cat "$dir/drain.err" >&2
            exit 1
        }
        sleep 0.05
    done
    t1=$(date +%s.%N)
    drain_rss=$(rss "$p")
    kill -TERM "$p"
    wait "$p" || true
    rm -f "$ring" "$db" "$db-wal" "$db-shm" "$db.dead.ndjson"
    drain_rate=$(awk -v n="$DRAIN_RECORDS" -v a="$t0" -v b="$t1" \
                 'BEGIN { printf "%.0f", n / (b - a) }')
}

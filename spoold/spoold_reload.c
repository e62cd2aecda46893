/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold's SIGHUP: the configuration and the scripts are loaded anew
 * and taken over only when all of them load; what changed is logged; a
 * changed forwarding restarts the forwarder's thread, which sends again
 * what the relay had not acknowledged.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_log.h"
#include "spoold_int.h"


static void spoold_reload_fwd(spoold_t *sd, const spoold_conf_t *oc,
    const spoold_conf_t *nc);
static void spoold_log_change(const char *name, const char *from,
    const char *to);


void
spoold_reload(spoold_t *sd)
{
    int                  fwd;
    char                 err[4096], a[32], b[32];
    spoold_conf_t        nc, *oc;
    spool_script_set_t  *set;

    log_info("reloading the configuration%s%s",
             sd->conf_file ? " from " : "",
             sd->conf_file ? sd->conf_file : "");

    if (spoold_conf_load(&nc, sd->conf_file, err, sizeof(err)) != 0) {
        log_warnx("reload failed, the running configuration stays: %s",
                  err);
        return;
    }

    if (spoold_conf_check(&nc, err, sizeof(err)) != 0) {
        log_warnx("reload failed, the running configuration stays: %s",
                  err);
        spoold_conf_free(&nc);
        return;
    }

    oc = &sd->conf;

    if (strcmp(nc.buffer, oc->buffer) != 0) {
        log_warnx("reload: \"buffer\" cannot change without a restart, "
                  "still using \"%s\"", oc->buffer);
        free(nc.buffer);
        nc.buffer = strdup(oc->buffer);

        if (nc.buffer == NULL) {
            log_warnx("reload failed, the running configuration stays: "
                      "out of memory");
            spoold_conf_free(&nc);
            return;
        }
    }

    /* every script anew, also one whose file changed under the same path */

    set = spool_script_load(&nc, err, sizeof(err));

    if (set == NULL) {
        log_warnx("reload failed, the running configuration and scripts "
                  "stay: %s", err);
        spoold_conf_free(&nc);
        return;
    }

    if (spool_buffer_set_limits(sd->buffer, nc.max_buffer, nc.overflow, nc.id)
        != 0)
    {
        log_warnx("reload failed, the running configuration stays");
        (void) spool_buffer_set_limits(sd->buffer, oc->max_buffer,
                                      oc->overflow, oc->id);
        spool_script_set_free(set);
        spoold_conf_free(&nc);
        return;
    }

    spoold_log_change("id", oc->id, nc.id);
    spoold_log_change("ring", oc->ring, nc.ring);

    snprintf(a, sizeof(a), "%" PRIu64, oc->max_buffer);
    snprintf(b, sizeof(b), "%" PRIu64, nc.max_buffer);
    spoold_log_change("max_buffer", a, b);

    spoold_log_change("overflow", spoold_overflow_names[oc->overflow],
                      spoold_overflow_names[nc.overflow]);

    snprintf(a, sizeof(a), "%" PRId64, oc->batch);
    snprintf(b, sizeof(b), "%" PRId64, nc.batch);
    spoold_log_change("batch", a, b);

    snprintf(a, sizeof(a), "%" PRIu64 "ms", oc->batch_linger);
    snprintf(b, sizeof(b), "%" PRIu64 "ms", nc.batch_linger);
    spoold_log_change("batch_linger", a, b);

    snprintf(a, sizeof(a), "%" PRIu64 "ms", oc->stall_timeout);
    snprintf(b, sizeof(b), "%" PRIu64 "ms", nc.stall_timeout);
    spoold_log_change("stall_timeout", a, b);

    spoold_log_change("log_level", spoold_level_names[oc->log_level],
                      spoold_level_names[nc.log_level]);

    spoold_log_change("script", oc->script ? oc->script : "",
                      nc.script ? nc.script : "");
    spool_script_install(sd->script, set);

    fwd = spoold_conf_fwd_changed(oc, &nc);

    if (fwd) {
        spoold_reload_fwd(sd, oc, &nc);
    }

    spoold_conf_free(oc);
    *oc = nc;

    sd->id.data = (const unsigned char *) oc->id;
    sd->id.len = strlen(oc->id);

    log_setverbose(oc->log_level);
    spool_ring_set_stall(&sd->ring, oc->stall_timeout);
    spool_ring_set_linger(&sd->ring, oc->batch_linger);

    /* a new ring path is picked up now, not after a second */
    spoold_check_ring(sd);

    if (fwd) {
        spoold_fwd_start(sd);
    }

    log_info("configuration reloaded");
}


/* logs the forwarding changes and stops the thread; it starts anew */

static void
spoold_reload_fwd(spoold_t *sd, const spoold_conf_t *oc,
    const spoold_conf_t *nc)
{
    char    a[32], b[32];
    size_t  i;

    spoold_log_change("relay", oc->relay ? oc->relay : "",
                      nc->relay ? nc->relay : "");

    if ((oc->token == NULL) != (nc->token == NULL)
        || (oc->token && strcmp(oc->token, nc->token) != 0))
    {
        log_info("reload: the token changed");
    }

    for (i = 0; i < oc->nbuckets || i < nc->nbuckets; i++) {
        if (i >= oc->nbuckets || i >= nc->nbuckets
            || strcmp(oc->buckets[i].name, nc->buckets[i].name) != 0
            || (oc->buckets[i].token == NULL)
               != (nc->buckets[i].token == NULL)
            || (oc->buckets[i].token
                && strcmp(oc->buckets[i].token, nc->buckets[i].token) != 0))
        {
            log_info("reload: the bucket tokens changed");
            break;
        }
    }

    snprintf(a, sizeof(a), "%" PRIu64, oc->rate);
    snprintf(b, sizeof(b), "%" PRIu64, nc->rate);
    spoold_log_change("rate", a, b);

    snprintf(a, sizeof(a), "%" PRIu64, oc->rate_bytes);
    snprintf(b, sizeof(b), "%" PRIu64, nc->rate_bytes);
    spoold_log_change("rate_bytes", a, b);

    snprintf(a, sizeof(a), "%" PRId64, oc->forward_batch);
    snprintf(b, sizeof(b), "%" PRId64, nc->forward_batch);
    spoold_log_change("forward_batch", a, b);

    snprintf(a, sizeof(a), "%" PRIu64, oc->forward_batch_bytes);
    snprintf(b, sizeof(b), "%" PRIu64, nc->forward_batch_bytes);
    spoold_log_change("forward_batch_bytes", a, b);

    snprintf(a, sizeof(a), "%" PRIu64 "ms", oc->forward_linger);
    snprintf(b, sizeof(b), "%" PRIu64 "ms", nc->forward_linger);
    spoold_log_change("forward_linger", a, b);

    snprintf(a, sizeof(a), "%" PRIu64 "ms", oc->retry_max);
    snprintf(b, sizeof(b), "%" PRIu64 "ms", nc->retry_max);
    spoold_log_change("retry_max", a, b);

    snprintf(a, sizeof(a), "%" PRIu64 "ms", oc->heartbeat);
    snprintf(b, sizeof(b), "%" PRIu64 "ms", nc->heartbeat);
    spoold_log_change("heartbeat", a, b);

    /* what was not acknowledged is sent again by the new thread */

    spool_fwd_stop(sd->fwd);
}


static void
spoold_log_change(const char *name, const char *from, const char *to)
{
    if (strcmp(from, to) != 0) {
        log_info("reload: %s \"%s\" -> \"%s\"", name, from, to);
    }
}

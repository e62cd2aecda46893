/*
 * Copyright (C) ReplayForge contributors
 *
 * The running daemon's state, shared by its main loop (spoold.c) and its
 * reload (spoold_reload.c).
 */

#ifndef _SPOOLD_INT_H_INCLUDED_
#define _SPOOLD_INT_H_INCLUDED_


#include <stdint.h>

#include "rf_record.h"
#include "spoold.h"
#include "spool_buffer.h"
#include "spool_forward.h"
#include "spool_ring.h"
#include "spool_script.h"


typedef struct {
    spoold_conf_t               conf;
    const char                 *conf_file;
    spool_buffer_t             *buffer;
    spool_ring_t                ring;
    rf_str_t                    id;
    spool_fwd_t                *fwd;
    spool_script_t             *script;
    uint64_t                    next_publish;
} spoold_t;


/* SIGHUP (spoold_reload.c) */
void spoold_reload(spoold_t *sd);

/* spoold.c: the ring file replaced or reset?  Start the forwarder. */
void spoold_check_ring(spoold_t *sd);
void spoold_fwd_start(spoold_t *sd);


#endif /* _SPOOLD_INT_H_INCLUDED_ */

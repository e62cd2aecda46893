/*
 * Copyright (C) ReplayForge contributors
 *
 * The sink types rf-playerd knows, by the name "sink TYPE NAME" uses.
 */

#include <stddef.h>
#include <string.h>

#include "player.h"


static const player_sink_type_t *const  player_sink_types[] = {
    &player_sink_http,
    &player_sink_sqlite,
    &player_sink_file,
    &player_sink_discord,
    &player_sink_log,
    NULL
};


const player_sink_type_t *
player_sink_type(const char *name)
{
    size_t  i;

    for (i = 0; player_sink_types[i] != NULL; i++) {
        if (strcmp(player_sink_types[i]->type, name) == 0) {
            return player_sink_types[i];
        }
    }

    return NULL;
}

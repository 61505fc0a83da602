/* debounce.h - a binary input that changes only after being stable for a time. */
#ifndef PLATEAU_DEBOUNCE_H
#define PLATEAU_DEBOUNCE_H
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    bool stable;             /* debounced value */
    bool raw;                /* last raw sample */
    uint32_t raw_since;      /* when raw last changed */
    uint32_t stable_ms;
} debounce_t;

void debounce_init(debounce_t *d, bool value, uint32_t now, uint32_t stable_ms);
/** Sample the raw input; returns true if the debounced value changed. The
 *  change is dated raw_since (when the input really moved), not now. */
bool debounce_update(debounce_t *d, bool raw, uint32_t now);

#endif

/* debounce.c - stability-time debouncer for hook, ring and polarity inputs. */
#include "debounce.h"

void debounce_init(debounce_t *d, bool value, uint32_t now, uint32_t stable_ms)
{
    d->stable = d->raw = value;
    d->raw_since = now;
    d->stable_ms = stable_ms;
}

bool debounce_update(debounce_t *d, bool raw, uint32_t now)
{
    if (raw != d->raw) {
        d->raw = raw;
        d->raw_since = now;
    }
    if (d->raw != d->stable && (uint32_t)(now - d->raw_since) >= d->stable_ms) {
        d->stable = d->raw;
        return true;
    }
    return false;
}

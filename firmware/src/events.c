/* events.c - fixed-size FIFO of event frames. */
#include "events.h"
#include <string.h>

void evq_init(evq_t *q)
{
    memset(q, 0, sizeof *q);
}

bool evq_post(evq_t *q, uint8_t type, uint8_t port, const uint8_t *data, uint8_t len)
{
    if (q->count == EVENT_QUEUE_LEN || len > EVENT_MAX_DATA) {
        q->dropped++;
        return false;
    }
    event_t *e = &q->items[(q->head + q->count) % EVENT_QUEUE_LEN];
    e->type = type;
    e->port = port;
    e->len = len;
    if (len)
        memcpy(e->data, data, len);
    q->count++;
    return true;
}

bool evq_take(evq_t *q, event_t *out)
{
    if (q->count == 0)
        return false;
    *out = q->items[q->head];
    q->head = (uint8_t)((q->head + 1) % EVENT_QUEUE_LEN);
    q->count--;
    return true;
}

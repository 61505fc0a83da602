/* protocol.h - host command dispatch and board replies (hw/PROTOCOL.md). */
#ifndef PLATEAU_PROTOCOL_H
#define PLATEAU_PROTOCOL_H
#include <stdint.h>
#include "frame.h"

struct board;

/** Handle one good frame from the host: HELLO -> CAPS, PING -> PONG,
 *  commands -> ACK, AUDIO -> the port's playout queue. */
void proto_handle(struct board *b, const frame_t *f, uint32_t now);
/** Send CAPS. */
void proto_send_caps(struct board *b);
/** Send STATUS for every port. */
void proto_send_status(struct board *b);

#endif

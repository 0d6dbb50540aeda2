/*
 * trav_responder.c: keeps answering the peer's checks after the handoff to
 * QUIC (a check retransmitted after we returned, or a late nomination),
 * with the credentials of the finished run.
 */
#include "traversal/trav_internal.h"

#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

struct trav_responder {
  trav_creds_t local;
  char remote_ufrag[RDV_RECORD_UFRAG_MAX + 1];
  trav_role_t role;
  uint64_t answered;
  uint64_t ignored;
};

int trav_responder_create(const trav_creds_t *local, const trav_creds_t *remote,
                          const trav_role_t *role, trav_responder_t **out) {
  trav_responder_t *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory for the STUN responder");
  r->local = *local;
  r->role = *role;
  memcpy(r->remote_ufrag, remote->ufrag, sizeof(r->remote_ufrag));
  *out = r;
  return 0;
}

size_t trav_responder_handle(trav_responder_t *r, const uint8_t *pkt,
                             size_t len, const udp_addr_t *from, uint8_t *resp,
                             size_t resp_cap) {
  if (r == NULL || pkt == NULL || from == NULL || resp == NULL)
    return 0;
  stun_msg msg;
  size_t out_len = 0;
  if (stun_msg_parse(pkt, len, &msg) != 0 ||
      trav_check_answer(r->local.ufrag, r->local.pwd, r->remote_ufrag,
                        &r->role, &msg, from, resp, resp_cap,
                        &out_len) != TRAV_REQ_ANSWERED) {
    r->ignored++;
    return 0;
  }
  r->answered++;
  return out_len;
}

uint64_t trav_responder_answered(const trav_responder_t *r) {
  return r ? r->answered : 0;
}

uint64_t trav_responder_ignored(const trav_responder_t *r) {
  return r ? r->ignored : 0;
}

void trav_responder_destroy(trav_responder_t *r) {
  if (r == NULL)
    return;
  /* The pwd is a secret of the session. */
  gnutls_memset(r, 0, sizeof(*r));
  free(r);
}

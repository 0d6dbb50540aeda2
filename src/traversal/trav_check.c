/*
 * trav_check.c: connectivity checks on the wire (RFC 8445 section 7.2), the
 * answer to a check (shared by trav_run and the responder), and random
 * credentials.
 *
 * A check is a Binding request with, in this order:
 *   USERNAME            "<receiver's ufrag>:<sender's ufrag>"
 *   PRIORITY            the sender's peer-reflexive priority
 *   ICE-CONTROLLING or ICE-CONTROLLED   the sender's tie-breaker
 *   USE-CANDIDATE       (controlling side, nomination only)
 *   MESSAGE-INTEGRITY   HMAC-SHA1 keyed with the receiver's pwd
 *   FINGERPRINT
 * The answer is a Binding success response with XOR-MAPPED-ADDRESS (the
 * check's source), MESSAGE-INTEGRITY keyed with the answerer's own pwd and
 * FINGERPRINT.
 *
 * Roles (RFC 8445 section 7.3.1.1): a check claiming the role we hold is a
 * role conflict. When our tie-breaker is larger or equal we answer 487
 * (Role Conflict); when it is smaller the RFC has us switch roles, but ours
 * is bound to the QUIC role (the server controls), so the check is left
 * unanswered and counted: no success answer ever goes to such a check.
 */
#include "traversal/trav_internal.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

size_t trav_check_write(const trav_creds_t *local, const trav_creds_t *remote,
                        const uint8_t txid[STUN_TXID_SIZE], bool controlling,
                        uint64_t tiebreaker, uint32_t priority,
                        bool use_candidate, uint8_t *buf, size_t cap) {
  char user[2 * RDV_RECORD_UFRAG_MAX + 2];
  int ulen = snprintf(user, sizeof(user), "%s:%s", remote->ufrag, local->ufrag);
  stun_msg_writer w;
  uint16_t role = controlling ? STUN_ATTR_ICE_CONTROLLING
                              : STUN_ATTR_ICE_CONTROLLED;
  if (stun_msg_write_header(&w, buf, cap, STUN_METHOD_BINDING,
                            STUN_CLASS_REQUEST, txid) != 0 ||
      stun_msg_write_attr(&w, STUN_ATTR_USERNAME, user, (size_t)ulen) != 0 ||
      stun_msg_write_u32(&w, STUN_ATTR_PRIORITY, priority) != 0 ||
      stun_msg_write_u64(&w, role, tiebreaker) != 0)
    return 0;
  if (use_candidate &&
      stun_msg_write_attr(&w, STUN_ATTR_USE_CANDIDATE, NULL, 0) != 0)
    return 0;
  if (stun_msg_write_integrity(&w, (const uint8_t *)remote->pwd,
                               strlen(remote->pwd)) != 0 ||
      stun_msg_write_fingerprint(&w) != 0)
    return 0;
  return w.len;
}

static size_t write_role_conflict(const char *pwd, const stun_msg *msg,
                                  uint8_t *resp, size_t cap) {
  stun_msg_writer w;
  if (stun_msg_write_header(&w, resp, cap, STUN_METHOD_BINDING,
                            STUN_CLASS_ERROR, msg->txid) != 0 ||
      stun_msg_write_error_code(&w, STUN_ERROR_ROLE_CONFLICT, "Role Conflict") != 0 ||
      stun_msg_write_integrity(&w, (const uint8_t *)pwd, strlen(pwd)) != 0 ||
      stun_msg_write_fingerprint(&w) != 0)
    return 0;
  return w.len;
}

/* The check claims our role: 487 when our tie-breaker wins, else nothing. */
static bool role_conflict(const trav_role_t *role, const stun_msg *msg,
                          const char *pwd, uint8_t *resp, size_t cap,
                          size_t *resp_len) {
  bool same = role->controlling ? msg->has_ice_controlling
                                : msg->has_ice_controlled;
  if (!same)
    return false;
  if (role->tiebreaker >= msg->ice_tiebreaker)
    *resp_len = write_role_conflict(pwd, msg, resp, cap);
  return true;
}

static size_t write_answer(const char *pwd, const stun_msg *msg,
                           const udp_addr_t *from, uint8_t *resp, size_t cap) {
  stun_msg_writer w;
  if (stun_msg_write_header(&w, resp, cap, STUN_METHOD_BINDING,
                            STUN_CLASS_SUCCESS, msg->txid) != 0 ||
      stun_msg_write_xor_address(&w, STUN_ATTR_XOR_MAPPED_ADDRESS, from) != 0 ||
      stun_msg_write_integrity(&w, (const uint8_t *)pwd, strlen(pwd)) != 0 ||
      stun_msg_write_fingerprint(&w) != 0)
    return 0;
  return w.len;
}

/* USERNAME is "<local_ufrag>:<rest>"; *rest points into msg. */
static bool username_is_ours(const stun_msg *msg, const char *local_ufrag,
                             stun_bytes *rest) {
  size_t n = strlen(local_ufrag);
  const stun_bytes *u = &msg->username;
  if (u->data == NULL || u->len <= n || u->data[n] != ':' ||
      memcmp(u->data, local_ufrag, n) != 0)
    return false;
  rest->data = u->data + n + 1;
  rest->len = u->len - n - 1;
  return true;
}

trav_req_verdict trav_check_answer(const char *local_ufrag,
                                   const char *local_pwd,
                                   const char *remote_ufrag,
                                   const trav_role_t *role,
                                   const stun_msg *msg, const udp_addr_t *from,
                                   uint8_t *resp, size_t cap,
                                   size_t *resp_len) {
  *resp_len = 0;
  if (msg->cls != STUN_CLASS_REQUEST || msg->method != STUN_METHOD_BINDING)
    return TRAV_REQ_NOT_REQUEST;
  stun_bytes rest;
  /* RFC 8445 section 7.3: requests must carry FINGERPRINT and be
   * authenticated with the short-term credential of the receiver. */
  if (!msg->has_fingerprint || !username_is_ours(msg, local_ufrag, &rest) ||
      stun_msg_check_integrity(msg, (const uint8_t *)local_pwd,
                               strlen(local_pwd)) != 0)
    return TRAV_REQ_UNAUTHENTICATED;
  if (remote_ufrag != NULL && (rest.len != strlen(remote_ufrag) ||
                               memcmp(rest.data, remote_ufrag, rest.len) != 0))
    return TRAV_REQ_FOREIGN_PEER;
  if (role != NULL && role_conflict(role, msg, local_pwd, resp, cap, resp_len))
    return TRAV_REQ_ROLE_CONFLICT;
  *resp_len = write_answer(local_pwd, msg, from, resp, cap);
  return *resp_len > 0 ? TRAV_REQ_ANSWERED : TRAV_REQ_NOT_REQUEST;
}

/* 64 characters: every random byte maps to one of them with 2 bits unused,
 * so each character carries 6 uniform bits. */
static const char ice_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int random_string(char *out, size_t len, gnutls_rnd_level_t level) {
  uint8_t raw[RDV_RECORD_PWD_MAX];
  if (len > sizeof(raw) || gnutls_rnd(level, raw, len) != 0)
    return err_fail(QP_ERR_INTERNAL, "no random bytes for ICE credentials");
  for (size_t i = 0; i < len; i++)
    out[i] = ice_chars[raw[i] & 63];
  out[len] = '\0';
  return 0;
}

int trav_creds_generate(trav_creds_t *c) {
  memset(c, 0, sizeof(*c));
  int rc = random_string(c->ufrag, TRAV_UFRAG_LEN, GNUTLS_RND_NONCE);
  if (rc == 0)
    rc = random_string(c->pwd, TRAV_PWD_LEN, GNUTLS_RND_KEY);
  return rc;
}

int trav_random_u64(uint64_t *v) {
  if (gnutls_rnd(GNUTLS_RND_NONCE, v, sizeof(*v)) != 0)
    return err_fail(QP_ERR_INTERNAL, "no random bytes for the ICE tie-breaker");
  return 0;
}

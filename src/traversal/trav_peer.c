/*
 * trav_peer.c: our record in the rendezvous store and the peer's.
 *
 * Freshness without trusting clocks (docs/internals/traversal.md):
 * - a client record names the server record it answers ("answers": that
 *   server's ufrag, fresh for every run), and a server adopts only client
 *   records that answer its own: one left by an earlier run, or written for
 *   a second server in the same session, is ignored, never deleted;
 * - the client publishes only after it adopted a server record, and again
 *   whenever it adopts a newer one (another ufrag), so a server that
 *   restarted meets it again;
 * - both sides keep re-reading the peer's key while checks run and adopt a
 *   record with new credentials; checks carrying another ufrag than the
 *   adopted one are ignored and trigger an immediate re-read.
 * rdv_record_check's clock test (RDV_RECORD_DEFAULT_MAX_AGE_MS) only
 * refuses records left over long ago.
 */
#include "traversal/trav_internal.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

/* Room for the thread's last error message (error.c keeps 512 bytes). */
#define TRAV_KEEP_ERROR_MAX 512

const char *trav_own_key(const trav_agent_t *a) {
  return a->controlling ? "server" : "client";
}

const char *trav_peer_key(const trav_agent_t *a) {
  return a->controlling ? "client" : "server";
}

static int fill_record(const trav_agent_t *a, rdv_record *rec) {
  rdv_record_init(rec, a->controlling ? RDV_ROLE_SERVER : RDV_ROLE_CLIENT,
                  a->cfg->session);
  snprintf(rec->ufrag, sizeof(rec->ufrag), "%s", a->local.ufrag);
  snprintf(rec->pwd, sizeof(rec->pwd), "%s", a->local.pwd);
  tls_fingerprint_to_hex(a->cfg->fingerprint, rec->fingerprint);
  trav_behavior_to_record(&a->self, &rec->nat);
  for (size_t i = 0; i < a->cand_count; i++) {
    char ip[RDV_RECORD_ADDR_MAX];
    const trav_cand_t *c = &a->cands[i];
    int rc = rdv_record_add_candidate(rec, c->type,
                                      trav_addr_ip(&c->addr, ip, sizeof(ip)),
                                      udp_addr_port(&c->addr), c->priority);
    if (rc != 0)
      return rc;
    snprintf(rec->candidates[rec->candidate_count - 1].via,
             sizeof(rec->candidates[0].via), "%s", c->via);
  }
  if (!a->controlling && a->have_remote)
    snprintf(rec->answers, sizeof(rec->answers), "%s", a->remote.ufrag);
  rec->time_ms = rdv_record_now_unix_ms();
  return 0;
}

int trav_peer_publish(trav_agent_t *a) {
  rdv_record rec;
  char text[RDV_RECORD_MAX_SIZE + 1];
  char sealed[RDV_SEALED_MAX + 1];
  size_t len = 0, sealed_len = 0;
  int rc = fill_record(a, &rec);
  /* Each publish gets a new time_ms: the peer looks for new candidates
   * only in a record whose time changed, and a late candidate (a mapping,
   * an allocation) may be published within the millisecond of the last. */
  if (rec.time_ms <= a->own_time_ms)
    rec.time_ms = a->own_time_ms + 1;
  a->own_time_ms = rec.time_ms;
  if (rc == 0)
    rc = rdv_record_encode(&rec, text, sizeof(text), &len);
  if (rc == 0 && a->cfg->seal != NULL)
    rc = rdv_seal_record(a->cfg->seal, trav_own_key(a), text, len, sealed,
                         sizeof(sealed), &sealed_len);
  if (rc == 0)
    rc = a->cfg->seal ? rdv_put(a->rdv, trav_own_key(a), sealed, sealed_len)
                      : rdv_put(a->rdv, trav_own_key(a), text, len);
  gnutls_memset(text, 0, sizeof(text)); /* holds our pwd */
  gnutls_memset(&rec, 0, sizeof(rec));
  if (rc == 0) {
    a->published = true;
    a->next_refresh_ms = rdv_now_ms() + TRAV_REFRESH_MS;
    QP_LOG_DEBUG("traversal: published %s record (%zu candidates) in %s",
                 trav_own_key(a), a->cand_count, rdv_describe(a->rdv));
  }
  return rc;
}

void trav_peer_unpublish(trav_agent_t *a) {
  if (!a->published)
    return;
  /* Called after a failure too: keep the message of that failure. */
  char keep[TRAV_KEEP_ERROR_MAX];
  snprintf(keep, sizeof(keep), "%s", qp_last_error());
  if (rdv_delete(a->rdv, trav_own_key(a)) != 0)
    QP_LOG_DEBUG("traversal: could not delete our record: %s", qp_last_error());
  a->published = false;
  err_fail(0, "%s", keep);
}

static void note_refused(trav_agent_t *a, int rc) {
  if (a->rec_err != rc || strcmp(a->rec_why, qp_last_error()) != 0)
    QP_LOG_INFO("traversal: ignoring %s record: %s", trav_peer_key(a),
                qp_last_error());
  a->rec_err = rc;
  snprintf(a->rec_why, sizeof(a->rec_why), "%s", qp_last_error());
  a->records_refused++;
}

static int adopt(trav_agent_t *a, const rdv_record *rec, int64_t now_ms) {
  snprintf(a->remote.ufrag, sizeof(a->remote.ufrag), "%s", rec->ufrag);
  snprintf(a->remote.pwd, sizeof(a->remote.pwd), "%s", rec->pwd);
  a->have_remote = true;
  a->rec_err = 0;
  a->adopted_ms = a->peer_alive_ms = now_ms;
  a->peer_time_ms = rec->time_ms;
  /* Waiting for the peer is over: punch_timeout_ms counts from here (again
   * for a newer record: the peer restarted). */
  if (a->cfg->wait_timeout_ms != 0)
    a->deadline_ms = now_ms + a->cfg->punch_timeout_ms;
  trav_pairs_from_record(a, rec, now_ms);
  QP_LOG_INFO("traversal: adopted %s record (ufrag %s, %zu candidates, %zu "
              "pairs, NAT %s)", trav_peer_key(a), rec->ufrag,
              rec->candidate_count, a->pair_count, rec->nat.mapping);
  /* Extra sockets open before the client publishes: by the time the server
   * reads the client's record, the client's mappings are opening. */
  int rc = trav_hard_on_adopt(a, rec, now_ms);
  if (rc != 0)
    return rc;
  /* The client answers each server record it adopts with its own. */
  return a->controlling ? 0 : trav_peer_publish(a);
}

/* Open a sealed record into plain (RDV_RECORD_MAX_SIZE + 1 bytes), or say
 * why a plain one cannot be read here. */
static int unseal(trav_agent_t *a, const char **text, size_t *len, char *plain) {
  const char *key = trav_peer_key(a);
  if (a->cfg->seal == NULL) {
    if (rdv_seal_is_sealed(*text, *len))
      return err_fail(QP_ERR_RENDEZVOUS, "the %s record is sealed with a "
                     "secret: give this side the same secret", key);
    return 0;
  }
  int rc = rdv_seal_open(a->cfg->seal, key, *text, *len, plain,
                         RDV_RECORD_MAX_SIZE + 1, len);
  if (rc != 0) {
    char why[256];
    snprintf(why, sizeof(why), "%s", qp_last_error());
    a->records_unopened++;
    return err_fail(rc, "%s (refused %u time%s so far)", why,
                   a->records_unopened, a->records_unopened == 1 ? "" : "s");
  }
  *text = plain;
  return 0;
}

/* Decode and check; 0, or the refusal code with qp_last_error set. */
static int read_record(trav_agent_t *a, const char *text, size_t len,
                       rdv_record *rec, uint8_t fp[TLS_FINGERPRINT_LEN]) {
  char plain[RDV_RECORD_MAX_SIZE + 1];
  int rc = unseal(a, &text, &len, plain);
  if (rc == 0)
    rc = rdv_record_decode(text, len, rec);
  gnutls_memset(plain, 0, sizeof(plain));
  if (rc != 0)
    return rc;
  rc = rdv_record_check(rec, a->cfg->session,
                        a->controlling ? RDV_ROLE_CLIENT : RDV_ROLE_SERVER,
                        rdv_record_now_unix_ms(),
                        RDV_RECORD_DEFAULT_MAX_AGE_MS);
  if (rc != 0)
    return rc;
  if (a->controlling && strcmp(rec->answers, a->local.ufrag) != 0)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "the client record answers %s%s%s, not this server (ufrag "
                   "%s): it was left by an earlier run or written for another "
                   "server of the same session",
                   rec->answers[0] ? "server ufrag \"" : "no server record",
                   rec->answers, rec->answers[0] ? "\"" : "", a->local.ufrag);
  if (tls_fingerprint_parse(rec->fingerprint, fp) != 0)
    return err_fail(QP_ERR_PROTOCOL, "the %s record's fingerprint is not "
                   "64 hex digits", trav_peer_key(a));
  return 0;
}

bool trav_peer_drop_stale(trav_agent_t *a, int64_t now_ms) {
  if (!a->have_remote || a->cfg->wait_timeout_ms == 0)
    return false;
  if (now_ms - a->peer_alive_ms < TRAV_STALE_MS) {
    if (a->peer_alive_ms > a->adopted_ms)
      return false; /* alive: a real punch failure */
    a->deadline_ms = a->peer_alive_ms + TRAV_STALE_MS; /* not known yet */
    return true;
  }
  QP_LOG_INFO("traversal: %s record (ufrag %s) unchanged for %lld ms and "
              "nothing came from it: left by a process that is gone; waiting "
              "for a new one", trav_peer_key(a), a->remote.ufrag,
              (long long)(now_ms - a->peer_alive_ms));
  snprintf(a->stale_ufrag, sizeof(a->stale_ufrag), "%s", a->remote.ufrag);
  a->stale_time_ms = a->peer_time_ms;
  a->have_remote = false;
  a->pair_count = 0;
  a->deadline_ms = a->cfg->wait_timeout_ms < 0
                       ? INT64_MAX
                       : a->start_ms + a->cfg->wait_timeout_ms;
  return true;
}

int trav_peer_poll(trav_agent_t *a, int64_t now_ms) {
  char *text = NULL;
  size_t len = 0;
  int rc = rdv_get(a->rdv, trav_peer_key(a), &text, &len);
  if (rc <= 0)
    return rc; /* absent (0) or the store failed */
  rdv_record rec;
  uint8_t fp[TLS_FINGERPRINT_LEN];
  rc = read_record(a, text, len, &rec, fp);
  gnutls_memset(text, 0, len); /* the peer's pwd */
  free(text);
  if (rc != 0) {
    note_refused(a, rc);
    return 0;
  }
  if (a->have_remote && strcmp(rec.ufrag, a->remote.ufrag) == 0 &&
      strcmp(rec.pwd, a->remote.pwd) == 0) {
    if (rec.time_ms != a->peer_time_ms) { /* its heartbeat */
      a->peer_time_ms = rec.time_ms;
      a->peer_alive_ms = now_ms;
      trav_pairs_trickle(a, &rec, now_ms); /* late candidates */
    }
    return 0; /* the record we already use */
  }
  if (strcmp(rec.ufrag, a->stale_ufrag) == 0 && rec.time_ms == a->stale_time_ms)
    return 0; /* the dead process's record, still unchanged */
  memcpy(a->peer_fp, fp, sizeof(fp));
  return adopt(a, &rec, now_ms);
}

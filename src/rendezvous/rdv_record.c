/*
 * rdv_record.c: encode, decode and check rendezvous records (JSON).
 *
 * Encode and decode share one field validator, so a record this code
 * publishes is always one it accepts.
 */
#include "rendezvous/rdv_record.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "rendezvous/rdv_json.h"

/* JSON numbers beyond 2^53 lose precision in many parsers (JavaScript,
 * some Python mappings); time_ms stays below it. */
#define RECORD_TIME_MAX ((UINT64_C(1) << 53) - 1)

static const char *const role_names[] = {"server", "client"};
static const char *const cand_names[] = {"host",  "srflx", "prflx", "predicted",
                                         "relay", "mapped"};
#define ROLE_COUNT (sizeof(role_names) / sizeof(role_names[0]))
#define CAND_COUNT (sizeof(cand_names) / sizeof(cand_names[0]))

const char *rdv_role_to_string(rdv_role role) {
  return (unsigned)role < ROLE_COUNT ? role_names[role] : "?";
}

const char *rdv_cand_type_to_string(rdv_cand_type type) {
  return (unsigned)type < CAND_COUNT ? cand_names[type] : "?";
}

/* Index of name in names, or -1. */
static int lookup(const char *const *names, size_t count, const char *name) {
  for (size_t i = 0; i < count; i++)
    if (strcmp(names[i], name) == 0)
      return (int)i;
  return -1;
}

uint64_t rdv_record_now_unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Numeric IPv4 or IPv6 text into its canonical form (out of
 * RDV_RECORD_ADDR_MAX bytes). */
static bool canonical_addr(const char *in, char *out) {
  unsigned char bin[16];
  if (inet_pton(AF_INET, in, bin) == 1)
    return inet_ntop(AF_INET, bin, out, RDV_RECORD_ADDR_MAX) != NULL;
  if (inet_pton(AF_INET6, in, bin) == 1)
    return inet_ntop(AF_INET6, bin, out, RDV_RECORD_ADDR_MAX) != NULL;
  return false;
}

void rdv_record_init(rdv_record *rec, rdv_role role, const char *session) {
  memset(rec, 0, sizeof(*rec));
  rec->version = RDV_RECORD_VERSION;
  snprintf(rec->software, sizeof(rec->software), "quic-portal/%s", QP_VERSION);
  rec->role = role;
  snprintf(rec->session, sizeof(rec->session), "%s", session ? session : "");
  snprintf(rec->nat.mapping, sizeof(rec->nat.mapping), "unknown");
  snprintf(rec->nat.filtering, sizeof(rec->nat.filtering), "unknown");
}

int rdv_record_add_candidate(rdv_record *rec, rdv_cand_type type,
                             const char *addr, uint16_t port,
                             uint32_t priority) {
  if (rec->candidate_count >= RDV_RECORD_MAX_CANDIDATES)
    return err_fail(QP_ERR_TOO_LARGE,
                   "rendezvous record already holds %d candidates",
                   RDV_RECORD_MAX_CANDIDATES);
  rdv_candidate *c = &rec->candidates[rec->candidate_count];
  if (addr == NULL || !canonical_addr(addr, c->addr))
    return err_fail(QP_ERR_INVALID,
                   "candidate address \"%.60s\" is not a numeric IPv4 or "
                   "IPv6 address",
                   addr ? addr : "(null)");
  if (port == 0 || (unsigned)type >= CAND_COUNT)
    return err_fail(QP_ERR_INVALID, "candidate %s:%u has a bad port or type",
                   c->addr, port);
  c->type = type;
  c->port = port;
  c->priority = priority;
  rec->candidate_count++;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Validation shared by encode and decode                                   */
/* ------------------------------------------------------------------------ */

/* Which bytes a field may hold. */
typedef enum charset { TEXT, ICE, HEX, TOKEN } charset;

static bool char_ok(charset set, unsigned char c) {
  bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9');
  switch (set) {
  case TEXT: /* any UTF-8 but control characters */
    return c >= 0x20 && c != 0x7f;
  case ICE: /* RFC 8445 ice-char */
    return alnum || c == '+' || c == '/';
  case HEX: /* lowercase, as QP_FINGERPRINT_SIZE says */
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  case TOKEN:
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  }
  return false;
}

static bool field_ok(const char *s, charset set, size_t min, size_t max) {
  size_t len = strnlen(s, max + 1);
  if (len < min || len > max)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!char_ok(set, (unsigned char)s[i]))
      return false;
  return true;
}

/* One string field's rule, for validation and its message. */
typedef struct string_rule {
  const char *name;
  size_t offset;
  charset set;
  size_t min, max;
  const char *expect;
} string_rule;

#define RULE(field, set, min, max, expect)                                     \
  { #field, offsetof(rdv_record, field), set, min, max, expect }

static const string_rule string_rules[] = {
    RULE(software, TEXT, 1, RDV_RECORD_SOFTWARE_MAX, "printable text"),
    RULE(session, TEXT, 1, RDV_SESSION_MAX, "printable text"),
    RULE(ufrag, ICE, RDV_RECORD_UFRAG_MIN, RDV_RECORD_UFRAG_MAX,
         "characters of A-Z a-z 0-9 + /"),
    RULE(pwd, ICE, RDV_RECORD_PWD_MIN, RDV_RECORD_PWD_MAX,
         "characters of A-Z a-z 0-9 + /"),
    RULE(fingerprint, HEX, QP_FINGERPRINT_SIZE - 1, QP_FINGERPRINT_SIZE - 1,
         "lowercase hex digits"),
    RULE(nat.mapping, TOKEN, 1, RDV_RECORD_NAT_MAX, "characters of a-z 0-9 -"),
    RULE(nat.filtering, TOKEN, 1, RDV_RECORD_NAT_MAX,
         "characters of a-z 0-9 -"),
};
#define STRING_RULE_COUNT (sizeof(string_rules) / sizeof(string_rules[0]))

static int check_candidate(const rdv_candidate *c, size_t i, int code,
                           const char *prefix) {
  char canon[RDV_RECORD_ADDR_MAX];
  if ((unsigned)c->type >= CAND_COUNT)
    return err_fail(code, "%s: candidate %zu has an unknown type", prefix, i);
  if (strnlen(c->addr, RDV_RECORD_ADDR_MAX) == RDV_RECORD_ADDR_MAX ||
      !canonical_addr(c->addr, canon))
    return err_fail(code, "%s: candidate %zu has no numeric IP address", prefix,
                   i);
  if (c->port == 0)
    return err_fail(code, "%s: candidate %zu has port 0", prefix, i);
  if (c->type == RDV_CAND_MAPPED
          ? !field_ok(c->via, TOKEN, 1, RDV_RECORD_VIA_MAX)
          : c->via[0] != '\0')
    return err_fail(code, "%s: candidate %zu: \"mapped\" must be 1 to %d "
                          "characters of a-z 0-9 - on a mapped (or srflx) "
                          "candidate, and only there", prefix, i,
                   RDV_RECORD_VIA_MAX);
  return 0;
}

/* code and prefix differ: a bad record to publish is the caller's mistake
 * (QP_ERR_INVALID), a bad record received is the peer's (QP_ERR_PROTOCOL). */
static int validate(const rdv_record *rec, int code, const char *prefix) {
  if (rec->version != RDV_RECORD_VERSION)
    return err_fail(code, "%s: version %d is not %d", prefix, rec->version,
                   RDV_RECORD_VERSION);
  if ((unsigned)rec->role >= ROLE_COUNT)
    return err_fail(code, "%s: unknown role %d", prefix, (int)rec->role);
  for (size_t i = 0; i < STRING_RULE_COUNT; i++) {
    const string_rule *rule = &string_rules[i];
    const char *value = (const char *)rec + rule->offset;
    if (!field_ok(value, rule->set, rule->min, rule->max))
      return err_fail(code, "%s: \"%s\" must be %zu to %zu %s", prefix,
                     rule->name, rule->min, rule->max, rule->expect);
  }
  if (rec->answers[0] != '\0' &&
      !field_ok(rec->answers, ICE, RDV_RECORD_UFRAG_MIN, RDV_RECORD_UFRAG_MAX))
    return err_fail(code, "%s: \"answers\" must be %d to %d characters of "
                   "A-Z a-z 0-9 + /", prefix, RDV_RECORD_UFRAG_MIN,
                   RDV_RECORD_UFRAG_MAX);
  if (rec->nat.port_delta < -RDV_RECORD_PORT_DELTA_MAX ||
      rec->nat.port_delta > RDV_RECORD_PORT_DELTA_MAX)
    return err_fail(code, "%s: \"port_delta\" %d is out of range", prefix,
                   (int)rec->nat.port_delta);
  if (rec->candidate_count > RDV_RECORD_MAX_CANDIDATES)
    return err_fail(code, "%s: more than %d candidates", prefix,
                   RDV_RECORD_MAX_CANDIDATES);
  for (size_t i = 0; i < rec->candidate_count; i++) {
    int rc = check_candidate(&rec->candidates[i], i, code, prefix);
    if (rc < 0)
      return rc;
  }
  if (rec->time_ms == 0 || rec->time_ms > RECORD_TIME_MAX)
    return err_fail(code, "%s: \"time_ms\" must be the publishing time", prefix);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Encode                                                                    */
/* ------------------------------------------------------------------------ */

static void write_candidate(rdv_json_writer *w, const rdv_candidate *c) {
  rdv_json_begin_object(w);
  rdv_json_name(w, "type");
  /* A mapping as srflx plus "mapped": readers before the type parse it. */
  rdv_json_string(w, rdv_cand_type_to_string(
                         c->type == RDV_CAND_MAPPED ? RDV_CAND_SRFLX : c->type));
  if (c->type == RDV_CAND_MAPPED) {
    rdv_json_name(w, "mapped");
    rdv_json_string(w, c->via);
  }
  rdv_json_name(w, "addr");
  rdv_json_string(w, c->addr);
  rdv_json_name(w, "port");
  rdv_json_uint(w, c->port);
  rdv_json_name(w, "priority");
  rdv_json_uint(w, c->priority);
  rdv_json_end_object(w);
}

static void write_string_member(rdv_json_writer *w, const char *name,
                                const char *value) {
  rdv_json_name(w, name);
  rdv_json_string(w, value);
}

static void write_record(rdv_json_writer *w, const rdv_record *rec) {
  rdv_json_begin_object(w);
  rdv_json_name(w, "v");
  rdv_json_int(w, rec->version);
  write_string_member(w, "software", rec->software);
  write_string_member(w, "role", rdv_role_to_string(rec->role));
  write_string_member(w, "session", rec->session);
  write_string_member(w, "ufrag", rec->ufrag);
  write_string_member(w, "pwd", rec->pwd);
  write_string_member(w, "fingerprint", rec->fingerprint);
  rdv_json_name(w, "nat");
  rdv_json_begin_object(w);
  write_string_member(w, "mapping", rec->nat.mapping);
  write_string_member(w, "filtering", rec->nat.filtering);
  rdv_json_name(w, "port_delta");
  rdv_json_int(w, rec->nat.port_delta);
  rdv_json_end_object(w);
  rdv_json_name(w, "candidates");
  rdv_json_begin_array(w);
  for (size_t i = 0; i < rec->candidate_count; i++)
    write_candidate(w, &rec->candidates[i]);
  rdv_json_end_array(w);
  rdv_json_name(w, "time_ms");
  rdv_json_uint(w, rec->time_ms);
  if (rec->answers[0] != '\0')
    write_string_member(w, "answers", rec->answers);
  rdv_json_end_object(w);
}

int rdv_record_encode(const rdv_record *rec, char *buf, size_t cap,
                      size_t *len) {
  if (rec == NULL || buf == NULL || len == NULL)
    return err_fail(QP_ERR_INVALID, "rdv_record_encode: missing argument");
  int rc = validate(rec, QP_ERR_INVALID, "cannot publish rendezvous record");
  if (rc < 0)
    return rc;
  rdv_json_writer w;
  rdv_json_writer_init(&w, buf, cap);
  write_record(&w, rec);
  if (w.overflow || w.len > RDV_RECORD_MAX_SIZE)
    return err_fail(QP_ERR_TOO_LARGE,
                   "rendezvous record does not fit in %zu bytes", cap);
  *len = w.len;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Decode                                                                    */
/* ------------------------------------------------------------------------ */

/* Member names of one object seen so far, to reject repeats and find
 * missing ones. */
typedef struct seen_set {
  const char *const *names;
  size_t count;
  uint32_t bits;
  size_t required; /* names[0..required) must appear; the rest may */
} seen_set;

/* Index of name, marking it seen; -1 for an unknown name (to be skipped);
 * fails on a repeat. */
static int mark_seen(rdv_json_reader *r, seen_set *seen, const char *name,
                     int *index) {
  *index = lookup(seen->names, seen->count, name);
  if (*index < 0)
    return 0;
  if (seen->bits & (UINT32_C(1) << *index)) {
    char quoted[RDV_JSON_NAME_MAX + 3];
    snprintf(quoted, sizeof(quoted), "\"%s\"", name);
    return rdv_json_fail(r, quoted, "appears twice");
  }
  seen->bits |= UINT32_C(1) << *index;
  return 0;
}

static int check_all_seen(const seen_set *seen, const char *what) {
  for (size_t i = 0; i < seen->required; i++)
    if (!(seen->bits & (UINT32_C(1) << i)))
      return err_fail(QP_ERR_PROTOCOL,
                     "malformed rendezvous record: %s has no \"%s\" member",
                     what, seen->names[i]);
  return 0;
}

/* A string naming one of names; *index set to its position. */
static int read_enum(rdv_json_reader *r, const char *what,
                     const char *const *names, size_t count, int *index) {
  char value[16];
  int rc = rdv_json_read_string(r, what, value, sizeof(value));
  if (rc < 0)
    return rc;
  *index = lookup(names, count, value);
  if (*index < 0)
    return rdv_json_fail(r, what, "has an unknown value");
  return 0;
}

/* "mapped" is optional (RDV_CAND_MAPPED). */
enum { CAND_TYPE, CAND_ADDR, CAND_PORT, CAND_PRIORITY, CAND_VIA, CAND_FIELDS };
#define CAND_REQUIRED CAND_VIA
static const char *const cand_fields[CAND_FIELDS] = {"type", "addr", "port",
                                                     "priority", "mapped"};

typedef struct cand_ctx {
  rdv_candidate *cand;
  seen_set seen;
} cand_ctx;

static int read_addr(rdv_json_reader *r, rdv_candidate *c) {
  char text[RDV_RECORD_ADDR_MAX];
  int rc = rdv_json_read_string(r, "\"addr\"", text, sizeof(text));
  if (rc < 0)
    return rc;
  if (!canonical_addr(text, c->addr))
    return rdv_json_fail(r, "\"addr\"",
                         "is not a numeric IPv4 or IPv6 "
                         "address");
  return 0;
}

static int on_candidate_member(rdv_json_reader *r, const char *name,
                               void *arg) {
  cand_ctx *ctx = arg;
  int index, type = 0, rc = mark_seen(r, &ctx->seen, name, &index);
  int64_t v;
  if (rc < 0)
    return rc;
  switch (index) {
  case CAND_TYPE:
    rc = read_enum(r, "\"type\"", cand_names, CAND_COUNT, &type);
    ctx->cand->type = (rdv_cand_type)type;
    return rc;
  case CAND_ADDR:
    return read_addr(r, ctx->cand);
  case CAND_PORT:
    rc = rdv_json_read_int(r, "\"port\"", 1, UINT16_MAX, &v);
    ctx->cand->port = (uint16_t)v;
    return rc;
  case CAND_PRIORITY:
    rc = rdv_json_read_int(r, "\"priority\"", 0, UINT32_MAX, &v);
    ctx->cand->priority = (uint32_t)v;
    return rc;
  case CAND_VIA:
    return rdv_json_read_string(r, "\"mapped\"", ctx->cand->via,
                                sizeof(ctx->cand->via));
  default:
    return rdv_json_skip_member(r, name);
  }
}

static int on_candidate(rdv_json_reader *r, size_t index, void *arg) {
  rdv_record *rec = arg;
  cand_ctx ctx = {.cand = &rec->candidates[index],
                  .seen = {cand_fields, CAND_FIELDS, 0, CAND_REQUIRED}};
  memset(ctx.cand, 0, sizeof(*ctx.cand));
  int rc = rdv_json_read_object(r, "a candidate", on_candidate_member, &ctx);
  if (rc < 0)
    return rc;
  /* srflx with "mapped": a port mapping (write_candidate). */
  if (ctx.cand->type == RDV_CAND_SRFLX && ctx.cand->via[0] != '\0')
    ctx.cand->type = RDV_CAND_MAPPED;
  rec->candidate_count = index + 1;
  return check_all_seen(&ctx.seen, "a candidate");
}

enum { NAT_MAPPING, NAT_FILTERING, NAT_PORT_DELTA, NAT_FIELDS };
static const char *const nat_fields[NAT_FIELDS] = {"mapping", "filtering",
                                                   "port_delta"};

typedef struct nat_ctx {
  rdv_nat *nat;
  seen_set seen;
} nat_ctx;

static int on_nat_member(rdv_json_reader *r, const char *name, void *arg) {
  nat_ctx *ctx = arg;
  int index, rc = mark_seen(r, &ctx->seen, name, &index);
  int64_t v;
  if (rc < 0)
    return rc;
  switch (index) {
  case NAT_MAPPING:
    return rdv_json_read_string(r, "\"mapping\"", ctx->nat->mapping,
                                sizeof(ctx->nat->mapping));
  case NAT_FILTERING:
    return rdv_json_read_string(r, "\"filtering\"", ctx->nat->filtering,
                                sizeof(ctx->nat->filtering));
  case NAT_PORT_DELTA:
    rc = rdv_json_read_int(r, "\"port_delta\"", -RDV_RECORD_PORT_DELTA_MAX,
                           RDV_RECORD_PORT_DELTA_MAX, &v);
    ctx->nat->port_delta = (int32_t)v;
    return rc;
  default:
    return rdv_json_skip_member(r, name);
  }
}

static int read_nat(rdv_json_reader *r, rdv_nat *nat) {
  nat_ctx ctx = {.nat = nat, .seen = {nat_fields, NAT_FIELDS, 0, NAT_FIELDS}};
  int rc = rdv_json_read_object(r, "\"nat\"", on_nat_member, &ctx);
  return rc < 0 ? rc : check_all_seen(&ctx.seen, "\"nat\"");
}

enum {
  REC_V,
  REC_SOFTWARE,
  REC_ROLE,
  REC_SESSION,
  REC_UFRAG,
  REC_PWD,
  REC_FINGERPRINT,
  REC_NAT,
  REC_CANDIDATES,
  REC_TIME,
  REC_REQUIRED, /* optional members follow */
  REC_ANSWERS = REC_REQUIRED,
  REC_FIELDS
};
static const char *const rec_fields[REC_FIELDS] = {
    "v",   "software",    "role", "session",    "ufrag",
    "pwd", "fingerprint", "nat",  "candidates", "time_ms", "answers"};

typedef struct rec_ctx {
  rdv_record *rec;
  seen_set seen;
} rec_ctx;

/* A string member read into a field of the record. */
static int read_field(rdv_json_reader *r, const char *name, char *field,
                      size_t cap) {
  char what[RDV_JSON_NAME_MAX + 3];
  snprintf(what, sizeof(what), "\"%s\"", name);
  return rdv_json_read_string(r, what, field, cap);
}

#define READ_FIELD(r, name, field) read_field(r, name, field, sizeof(field))

static int on_record_member(rdv_json_reader *r, const char *name, void *arg) {
  rdv_record *rec = ((rec_ctx *)arg)->rec;
  int index, role = 0, rc = mark_seen(r, &((rec_ctx *)arg)->seen, name, &index);
  int64_t v;
  if (rc < 0)
    return rc;
  switch (index) {
  case REC_V:
    rc = rdv_json_read_int(r, "\"v\"", 0, INT32_MAX, &v);
    rec->version = (int)v;
    return rc;
  case REC_SOFTWARE:
    return READ_FIELD(r, name, rec->software);
  case REC_ROLE:
    rc = read_enum(r, "\"role\"", role_names, ROLE_COUNT, &role);
    rec->role = (rdv_role)role;
    return rc;
  case REC_SESSION:
    return READ_FIELD(r, name, rec->session);
  case REC_UFRAG:
    return READ_FIELD(r, name, rec->ufrag);
  case REC_PWD:
    return READ_FIELD(r, name, rec->pwd);
  case REC_FINGERPRINT:
    return READ_FIELD(r, name, rec->fingerprint);
  case REC_NAT:
    return read_nat(r, &rec->nat);
  case REC_CANDIDATES:
    return rdv_json_read_array(r, "\"candidates\"", RDV_RECORD_MAX_CANDIDATES,
                               on_candidate, rec);
  case REC_TIME:
    rc = rdv_json_read_int(r, "\"time_ms\"", 1, (int64_t)RECORD_TIME_MAX, &v);
    rec->time_ms = (uint64_t)v;
    return rc;
  case REC_ANSWERS:
    return READ_FIELD(r, name, rec->answers);
  default:
    return rdv_json_skip_member(r, name);
  }
}

/* First pass: only "v", so that a record of another version is reported
 * as such even if the rest of it has another shape. */
static int on_version_member(rdv_json_reader *r, const char *name, void *arg) {
  if (strcmp(name, "v") != 0)
    return rdv_json_skip_member(r, name);
  return rdv_json_read_int(r, "\"v\"", 0, INT32_MAX, arg);
}

/* 0 if "v" is RDV_RECORD_VERSION, or if the text is not even JSON (the
 * full pass then names the precise problem); otherwise the version error. */
static int check_version(const char *text, size_t len) {
  rdv_json_reader r;
  rdv_json_reader_init(&r, text, len);
  int64_t version = -1;
  if (rdv_json_read_object(&r, "the record", on_version_member, &version) < 0)
    return 0;
  if (version < 0)
    return err_fail(QP_ERR_PROTOCOL,
                   "malformed rendezvous record: it has no \"v\" member");
  if (version != RDV_RECORD_VERSION)
    return err_fail(QP_ERR_PROTOCOL,
                   "rendezvous record has version %" PRId64 "; quic-portal "
                   "%s reads only version %d: upgrade the older peer",
                   version, QP_VERSION, RDV_RECORD_VERSION);
  return 0;
}

int rdv_record_decode(const char *text, size_t len, rdv_record *out) {
  if (text == NULL || out == NULL)
    return err_fail(QP_ERR_INVALID, "rdv_record_decode: missing argument");
  if (len > RDV_RECORD_MAX_SIZE)
    return err_fail(QP_ERR_PROTOCOL,
                   "rendezvous record is %zu bytes; the limit is %d", len,
                   RDV_RECORD_MAX_SIZE);
  int rc = check_version(text, len);
  if (rc < 0)
    return rc;
  rdv_record rec;
  memset(&rec, 0, sizeof(rec));
  rec_ctx ctx = {.rec = &rec, .seen = {rec_fields, REC_FIELDS, 0, REC_REQUIRED}};
  rdv_json_reader r;
  rdv_json_reader_init(&r, text, len);
  if ((rc = rdv_json_read_object(&r, "the record", on_record_member, &ctx)) <
          0 ||
      (rc = rdv_json_read_end(&r)) < 0 ||
      (rc = check_all_seen(&ctx.seen, "the record")) < 0 ||
      (rc = validate(&rec, QP_ERR_PROTOCOL, "malformed rendezvous record")) < 0)
    return rc;
  *out = rec;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Check                                                                     */
/* ------------------------------------------------------------------------ */

static int check_age(const rdv_record *rec, uint64_t now, uint64_t max_age) {
  const char *who = rdv_role_to_string(rec->role);
  if (now > rec->time_ms && now - rec->time_ms > max_age)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "the %s's rendezvous record for session \"%s\" is %" PRIu64
                   " s old (the limit is %" PRIu64
                   " s): it was probably left by an earlier run",
                   who, rec->session, (now - rec->time_ms) / 1000,
                   max_age / 1000);
  if (rec->time_ms > now && rec->time_ms - now > max_age)
    return err_fail(
        QP_ERR_RENDEZVOUS,
        "the %s's rendezvous record for session \"%s\" is dated %" PRIu64
        " s in the future: the two machines' clocks disagree",
        who, rec->session, (rec->time_ms - now) / 1000);
  return 0;
}

int rdv_record_check(const rdv_record *rec, const char *session, rdv_role role,
                     uint64_t now_unix_ms, uint64_t max_age_ms) {
  if (rec == NULL || session == NULL)
    return err_fail(QP_ERR_INVALID, "rdv_record_check: missing argument");
  if (strcmp(rec->session, session) != 0)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "rendezvous record is for session \"%s\", not \"%s\"",
                   rec->session, session);
  if (rec->role != role)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "rendezvous record for session \"%s\" was published by a "
                   "%s; expected the %s's",
                   session, rdv_role_to_string(rec->role),
                   rdv_role_to_string(role));
  return check_age(rec, now_unix_ms, max_age_ms);
}

/* ctest: labels=unit */
/* Rendezvous records: roundtrip, and each kind of bad record rejected with
 * its own error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "rendezvous/rdv_record.h"
#include "tu.h"

#define FINGERPRINT                                                            \
  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define PUBLISHED_MS UINT64_C(1700000000000)
#define TEXT_MAX (RDV_RECORD_MAX_SIZE * 2)

static void make_record(rdv_record *rec) {
  rdv_record_init(rec, RDV_ROLE_SERVER, "sess");
  snprintf(rec->ufrag, sizeof(rec->ufrag), "abcd");
  snprintf(rec->pwd, sizeof(rec->pwd), "0123456789abcdefABCD+/");
  snprintf(rec->fingerprint, sizeof(rec->fingerprint), FINGERPRINT);
  snprintf(rec->nat.mapping, sizeof(rec->nat.mapping), "endpoint-independent");
  snprintf(rec->nat.filtering, sizeof(rec->nat.filtering),
           "address-and-port-dependent");
  rec->nat.port_delta = 2;
  assert_int_equal(rdv_record_add_candidate(rec, RDV_CAND_HOST, "192.168.1.10",
                                            5000, 2130706431),
                   0);
  assert_int_equal(rdv_record_add_candidate(rec, RDV_CAND_SRFLX, "203.0.113.7",
                                            4242, 1694498815),
                   0);
  assert_int_equal(rdv_record_add_candidate(rec, RDV_CAND_HOST, "2001:DB8:0::1",
                                            5000, 2130706175),
                   0);
  assert_int_equal(
      rdv_record_add_candidate(rec, RDV_CAND_PRFLX, "::ffff:1.2.3.4", 1, 0), 0);
  assert_int_equal(rdv_record_add_candidate(rec, RDV_CAND_PREDICTED,
                                            "198.51.100.1", 65535, UINT32_MAX),
                   0);
  rec->time_ms = PUBLISHED_MS;
}

static void assert_same_record(const rdv_record *a, const rdv_record *b) {
  assert_int_equal(a->version, b->version);
  assert_string_equal(a->software, b->software);
  assert_int_equal(a->role, b->role);
  assert_string_equal(a->session, b->session);
  assert_string_equal(a->ufrag, b->ufrag);
  assert_string_equal(a->pwd, b->pwd);
  assert_string_equal(a->fingerprint, b->fingerprint);
  assert_string_equal(a->nat.mapping, b->nat.mapping);
  assert_string_equal(a->nat.filtering, b->nat.filtering);
  assert_int_equal(a->nat.port_delta, b->nat.port_delta);
  assert_int_equal(a->candidate_count, b->candidate_count);
  for (size_t i = 0; i < a->candidate_count; i++) {
    assert_int_equal(a->candidates[i].type, b->candidates[i].type);
    assert_string_equal(a->candidates[i].addr, b->candidates[i].addr);
    assert_int_equal(a->candidates[i].port, b->candidates[i].port);
    assert_int_equal(a->candidates[i].priority, b->candidates[i].priority);
    assert_string_equal(a->candidates[i].via, b->candidates[i].via);
  }
  assert_int_equal(a->time_ms, b->time_ms);
}

static size_t encode(const rdv_record *rec, char *buf) {
  size_t len;
  int rc = rdv_record_encode(rec, buf, TEXT_MAX, &len);
  if (rc != 0)
    fail_msg("encode failed: %s", qp_last_error());
  assert_int_equal(strlen(buf), len);
  return len;
}

static void roundtrip(const rdv_record *rec) {
  char text[TEXT_MAX];
  size_t len = encode(rec, text);
  rdv_record back;
  int rc = rdv_record_decode(text, len, &back);
  if (rc != 0)
    fail_msg("decode failed: %s\n%s", qp_last_error(), text);
  assert_same_record(rec, &back);
}

static void record_roundtrips(void **state) {
  (void)state;
  rdv_record rec;
  make_record(&rec);
  char text[TEXT_MAX];
  encode(&rec, text);
  print_message("%s\n", text);
  assert_non_null(strstr(text, "{\"v\":1,\"software\":\"quic-portal/" QP_VERSION "\","
                               "\"role\":\"server\",\"session\":\"sess\""));
  /* Addresses are stored in canonical form. */
  assert_string_equal(rec.candidates[2].addr, "2001:db8::1");
  assert_string_equal(rec.candidates[3].addr, "::ffff:1.2.3.4");
  roundtrip(&rec);
  rec.role = RDV_ROLE_CLIENT;
  rec.candidate_count = 0;
  rec.nat.port_delta = -RDV_RECORD_PORT_DELTA_MAX;
  roundtrip(&rec);
}

/* Every string at its longest, worst-case escaping, every candidate the
 * longest IPv6 address: still under RDV_RECORD_MAX_SIZE. */
static void largest_record_fits(void **state) {
  (void)state;
  rdv_record rec;
  make_record(&rec);
  memset(rec.session, '"', RDV_SESSION_MAX);
  memset(rec.software, '\\', RDV_RECORD_SOFTWARE_MAX);
  memset(rec.ufrag, 'u', RDV_RECORD_UFRAG_MAX);
  memset(rec.pwd, 'p', RDV_RECORD_PWD_MAX);
  memset(rec.nat.mapping, 'm', RDV_RECORD_NAT_MAX);
  memset(rec.nat.filtering, 'f', RDV_RECORD_NAT_MAX);
  rec.candidate_count = 0;
  for (int i = 0; i < RDV_RECORD_MAX_CANDIDATES; i++)
    assert_int_equal(rdv_record_add_candidate(
                         &rec, RDV_CAND_PREDICTED,
                         "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 65535,
                         UINT32_MAX),
                     0);
  assert_int_equal(
      rdv_record_add_candidate(&rec, RDV_CAND_HOST, "1.2.3.4", 1, 1),
      QP_ERR_TOO_LARGE);
  char text[TEXT_MAX];
  size_t len = encode(&rec, text);
  print_message("largest record: %zu bytes\n", len);
  assert_true(len <= RDV_RECORD_MAX_SIZE);
  roundtrip(&rec);
}

static void expect_encode_error(const rdv_record *rec, const char *message) {
  char text[TEXT_MAX];
  size_t len;
  assert_int_equal(rdv_record_encode(rec, text, sizeof(text), &len),
                   QP_ERR_INVALID);
  if (strstr(qp_last_error(), message) == NULL)
    fail_msg("expected \"%s\" in \"%s\"", message, qp_last_error());
}

static void encode_refuses_bad_fields(void **state) {
  (void)state;
  rdv_record rec;
  make_record(&rec);
  snprintf(rec.ufrag, sizeof(rec.ufrag), "abc");
  expect_encode_error(&rec, "\"ufrag\" must be 4 to 64 characters of");
  make_record(&rec);
  snprintf(rec.pwd, sizeof(rec.pwd), "0123456789abcdefABCD+-");
  expect_encode_error(&rec, "\"pwd\" must be 22 to 128");
  make_record(&rec);
  rec.fingerprint[0] = 'A';
  expect_encode_error(&rec, "\"fingerprint\" must be 64 to 64 lowercase hex");
  make_record(&rec);
  snprintf(rec.nat.mapping, sizeof(rec.nat.mapping), "Endpoint Independent");
  expect_encode_error(&rec, "\"nat.mapping\"");
  make_record(&rec);
  rec.session[0] = '\0';
  expect_encode_error(&rec, "\"session\" must be 1 to 128 printable text");
  make_record(&rec);
  rec.session[1] = '\n';
  expect_encode_error(&rec, "\"session\"");
  make_record(&rec);
  rec.time_ms = 0;
  expect_encode_error(&rec, "\"time_ms\" must be the publishing time");
  make_record(&rec);
  rec.nat.port_delta = 70000;
  expect_encode_error(&rec, "\"port_delta\" 70000 is out of range");
  make_record(&rec);
  rec.candidates[0].port = 0;
  expect_encode_error(&rec, "candidate 0 has port 0");
  make_record(&rec);
  snprintf(rec.candidates[1].addr, RDV_RECORD_ADDR_MAX, "host.example");
  expect_encode_error(&rec, "candidate 1 has no numeric IP address");

  make_record(&rec);
  char tiny[64];
  size_t len;
  assert_int_equal(rdv_record_encode(&rec, tiny, sizeof(tiny), &len),
                   QP_ERR_TOO_LARGE);
  static const char *const bad_addrs[] = {
      "1.2.3", "1.2.3.256", "fe80::1%eth0", "example.com", "", "1.2.3.4:80"};
  for (size_t i = 0; i < sizeof(bad_addrs) / sizeof(bad_addrs[0]); i++)
    assert_int_equal(
        rdv_record_add_candidate(&rec, RDV_CAND_HOST, bad_addrs[i], 1, 1),
        QP_ERR_INVALID);
  assert_int_equal(
      rdv_record_add_candidate(&rec, RDV_CAND_HOST, "1.2.3.4", 0, 1),
      QP_ERR_INVALID);
}

/* The baseline record's text with the first `from` replaced by `to`. */
static size_t variant(const char *from, const char *to, char *out) {
  rdv_record rec;
  make_record(&rec);
  char text[TEXT_MAX];
  encode(&rec, text);
  char *at = strstr(text, from);
  if (at == NULL)
    fail_msg("\"%s\" is not in %s", from, text);
  return (size_t)snprintf(out, TEXT_MAX, "%.*s%s%s", (int)(at - text), text, to,
                          at + strlen(from));
}

static void expect_decode_error(const char *text, size_t len, int code,
                                const char *message) {
  rdv_record rec;
  int rc = rdv_record_decode(text, len, &rec);
  if (rc != code || strstr(qp_last_error(), message) == NULL)
    fail_msg("for %.*s\nexpected %s \"%s\", got %s \"%s\"", (int)len, text,
             qp_err_name(code), message, qp_err_name(rc), qp_last_error());
}

typedef struct bad_case {
  const char *from, *to, *message;
} bad_case;

static const bad_case bad_cases[] = {
    {"\"port\":5000", "\"port\":0", "\"port\" must be between 1 and 65535"},
    {"\"port\":5000", "\"port\":05000", "\"port\" has a leading zero"},
    {"\"port\":5000", "\"port\":5000.5", "\"port\" must be an integer"},
    {"\"port\":5000", "\"port\":1e3", "\"port\" must be an integer"},
    {"\"port\":5000", "\"port\":\"5000\"", "\"port\" must be a number"},
    {"\"port\":5000", "\"port\":99999999999999999999999",
     "\"port\" must be between"},
    {"\"role\":\"server\"", "\"role\":\"boss\"",
     "\"role\" has an unknown value"},
    {"\"type\":\"host\"", "\"type\":\"tunnel\"",
     "\"type\" has an unknown value"},
    {"\"addr\":\"192.168.1.10\"", "\"addr\":\"192.168.1.300\"",
     "\"addr\" is not a numeric IPv4 or IPv6 address"},
    {"\"addr\":\"192.168.1.10\"", "\"addr\":\"example.com\"",
     "\"addr\" is not a numeric"},
    {"\"ufrag\":\"abcd\"", "\"ufrag\":\"ab\"", "\"ufrag\" must be 4 to 64"},
    {"\"ufrag\":\"abcd\"", "\"ufrag\":\"ab cd\"", "\"ufrag\" must be 4 to 64"},
    {"\"fingerprint\":\"0", "\"fingerprint\":\"F",
     "\"fingerprint\" must be 64 to 64 lowercase hex digits"},
    {"cdef\",\"nat\"", "cdef0\",\"nat\"", "\"fingerprint\" is longer than"},
    {"\"time_ms\":1700000000000", "\"time_ms\":-5",
     "\"time_ms\" must be between 1 and"},
    {",\"time_ms\"", ",\"ufrag\":\"abcd\",\"time_ms\"",
     "\"ufrag\" appears twice"},
    {"\"session\":\"sess\",", "", "the record has no \"session\" member"},
    {"\"port_delta\":2", "\"port_delta\":70000",
     "\"port_delta\" must be between"},
    {"\"mapping\":\"endpoint-independent\",", "",
     "\"nat\" has no \"mapping\" member"},
    {"\"type\":\"host\",", "", "a candidate has no \"type\" member"},
    {"\"nat\":{", "\"nat\":[", "\"nat\" expects '{' here"},
    {"}],", "},],", "a candidate expects '{' here"},
    {"\"session\":\"sess\"", "\"session\":\"se\x01ss\"",
     "\"session\" contains a raw control character"},
    {"\"session\":\"sess\"", "\"session\":\"s\\u0000s\"", "contains U+0000"},
    {"\"session\":\"sess\"", "\"session\":\"s\\ud800s\"",
     "has a lone high surrogate"},
    {"\"session\":\"sess\"", "\"session\":\"s\\udc00s\"",
     "has a lone low surrogate"},
    {"\"session\":\"sess\"", "\"session\":\"s\\u12G4\"",
     "has a bad \\u escape"},
    {"\"session\":\"sess\"", "\"session\":\"s\\x\"", "has an unknown escape"},
    {"\"session\":\"sess\"", "\"session\":\"s\xff\"", "is not valid UTF-8"},
    {"\"session\":\"sess\"", "\"session\":\"s\xc0\xaf\"", "is not valid UTF-8"},
    {"\"session\":\"sess\"", "\"session\":\"s\xed\xa0\x80\"",
     "is not valid UTF-8"},
    {"\"session\":\"sess\"", "\"session\":\"s\\u0007\"",
     "\"session\" must be 1 to 128 printable text"},
    {"\"session\":\"sess\"", "\"session\":\"sess\" /* c */",
     "the record expects ',' or '}' here"},
    {"{\"v\":1", "[\"v\":1", "the record expects '{' here"},
    {"\"v\":1", "\"v\":true", "\"v\" must be a number"},
    {"\"software\":\"quic-portal/" QP_VERSION "\"", "\"software\":\"\"",
     "\"software\" must be 1 to 64"},
    {"\"software\":\"quic-portal/" QP_VERSION "\"", "\"software\":null",
     "\"software\" must be a string"},
    {"\"software\"", "\"software_name_that_is_far_too_long\"",
     "a member name is longer than 32 bytes"},
    {"\"software\"", "\"extra\":[[[[[[[[[1]]]]]]]]],\"software\"",
     "is nested too deeply"},
    {"\"software\"", "\"extra\":tru,\"software\"", "is not valid JSON"},
    {"\"software\"", "\"extra\":-,\"software\"", "is not a valid value"},
    {"\"software\"", "\"extra\":1.,\"software\"", "has a bad fraction"},
    {"\"software\"", "\"extra\":1e+,\"software\"", "has a bad exponent"},
    {"\"software\"", "\"extra\" 1,\"software\"", "\"extra\" expects ':' here"},
    {"1700000000000}", "1700000000000}x", "has text after its end"},
    {"1700000000000}", "1700000000000", "the record expects ',' or '}' here"},
};

static void malformed_records_are_rejected(void **state) {
  (void)state;
  char text[TEXT_MAX];
  for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
    size_t len = variant(bad_cases[i].from, bad_cases[i].to, text);
    expect_decode_error(text, len, QP_ERR_PROTOCOL, bad_cases[i].message);
  }
  expect_decode_error("", 0, QP_ERR_PROTOCOL, "the record expects '{' here");
  expect_decode_error("{}", 2, QP_ERR_PROTOCOL, "it has no \"v\" member");
  /* A NUL inside the given length is a raw control character. */
  size_t len = variant("\"sess\"", "\"se ss\"", text);
  strstr(text, "se ss")[2] = '\0';
  expect_decode_error(text, len, QP_ERR_PROTOCOL, "raw control character");
}

static void every_truncation_is_rejected(void **state) {
  (void)state;
  rdv_record rec;
  make_record(&rec);
  char text[TEXT_MAX];
  size_t len = encode(&rec, text);
  for (size_t cut = 0; cut < len; cut++) {
    rdv_record out;
    /* A copy of exactly cut bytes, so ASan sees any read past it. */
    char *copy = malloc(cut + 1);
    memcpy(copy, text, cut);
    assert_int_equal(rdv_record_decode(copy, cut, &out), QP_ERR_PROTOCOL);
    free(copy);
  }
}

static void unknown_members_and_escapes_are_accepted(void **state) {
  (void)state;
  char text[TEXT_MAX];
  size_t len =
      variant("\"software\"",
              " \"future\" : {\"a\":[1,-0,2.5e3,1E-2,true,false,null,\"x\\n\"],"
              "\"b\":{}} ,\r\n\t\"software\"",
              text);
  rdv_record rec;
  int rc = rdv_record_decode(text, len, &rec);
  if (rc != 0)
    fail_msg("%s", qp_last_error());
  assert_string_equal(rec.software, "quic-portal/" QP_VERSION);

  len = variant("\"session\":\"sess\"",
                "\"session\":\"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\/ \\\\\"",
                text);
  assert_int_equal(rdv_record_decode(text, len, &rec), 0);
  assert_string_equal(rec.session, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" / \\");
  roundtrip(&rec);
}

/* A port mapping's candidate: written as srflx plus "mapped", so that a
 * reader that does not know the type (it skips unknown members) still
 * parses the record and sees a srflx candidate; read back as mapped. */
static void mapped_candidates(void **state) {
  (void)state;
  rdv_record rec, back;
  make_record(&rec);
  assert_int_equal(rdv_record_add_candidate(&rec, RDV_CAND_MAPPED, "11.0.1.2",
                                            4000, 1946157055),
                   0);
  rdv_candidate *m = &rec.candidates[rec.candidate_count - 1];
  char text[TEXT_MAX];
  size_t len;
  /* No protocol named: refused when writing. */
  assert_int_equal(rdv_record_encode(&rec, text, TEXT_MAX, &len), QP_ERR_INVALID);
  snprintf(m->via, sizeof(m->via), "upnp");
  len = encode(&rec, text);
  assert_non_null(strstr(text, "{\"type\":\"srflx\",\"mapped\":\"upnp\","
                               "\"addr\":\"11.0.1.2\",\"port\":4000,"));
  assert_null(strstr(text, "\"type\":\"mapped\""));
  assert_int_equal(rdv_record_decode(text, len, &back), 0);
  assert_same_record(&rec, &back);
  assert_int_equal(back.candidates[back.candidate_count - 1].type, RDV_CAND_MAPPED);
  assert_string_equal(back.candidates[back.candidate_count - 1].via, "upnp");
  /* The other candidates carry no "mapped". */
  assert_int_equal(back.candidates[1].type, RDV_CAND_SRFLX);
  assert_string_equal(back.candidates[1].via, "");
  /* "type":"mapped" is read too. */
  char alt[TEXT_MAX];
  char *at = strstr(text, "\"type\":\"srflx\",\"mapped\"");
  len = (size_t)snprintf(alt, sizeof(alt), "%.*s\"type\":\"mapped\",\"mapped\"%s",
                         (int)(at - text), text,
                         at + strlen("\"type\":\"srflx\",\"mapped\""));
  assert_int_equal(rdv_record_decode(alt, len, &back), 0);
  assert_int_equal(back.candidates[back.candidate_count - 1].type, RDV_CAND_MAPPED);
  /* "mapped" on a host candidate, or not a token: rejected. */
  len = variant("{\"type\":\"host\",", "{\"type\":\"host\",\"mapped\":\"pcp\",", text);
  expect_decode_error(text, len, QP_ERR_PROTOCOL, "\"mapped\" must be");
  len = variant("{\"type\":\"srflx\",", "{\"type\":\"srflx\",\"mapped\":\"UPnP!\",", text);
  expect_decode_error(text, len, QP_ERR_PROTOCOL, "\"mapped\" must be");
}

static void other_versions_are_named(void **state) {
  (void)state;
  char text[TEXT_MAX];
  size_t len = variant("\"v\":1", "\"v\":2", text);
  expect_decode_error(text, len, QP_ERR_PROTOCOL,
                      "rendezvous record has version 2; quic-portal " QP_VERSION " "
                      "reads only version 1: upgrade the older peer");
  /* Reported as a version problem even when the rest has another shape. */
  len = variant("\"v\":1,", "\"candidates2\":\"x\",\"ufrag\":7,\"v\":3,", text);
  expect_decode_error(text, len, QP_ERR_PROTOCOL, "has version 3");
  len = variant("\"v\":1,", "", text);
  expect_decode_error(text, len, QP_ERR_PROTOCOL, "it has no \"v\" member");
}

static void oversized_records_are_rejected(void **state) {
  (void)state;
  /* A valid record padded with whitespace to one byte over the limit. */
  char text[TEXT_MAX];
  rdv_record rec;
  make_record(&rec);
  size_t len = encode(&rec, text);
  memmove(text + (RDV_RECORD_MAX_SIZE + 1 - len), text, len);
  memset(text, ' ', RDV_RECORD_MAX_SIZE + 1 - len);
  expect_decode_error(text, RDV_RECORD_MAX_SIZE + 1, QP_ERR_PROTOCOL,
                      "rendezvous record is 8193 bytes; the limit is 8192");
  /* One byte less decodes. */
  assert_int_equal(rdv_record_decode(text + 1, RDV_RECORD_MAX_SIZE, &rec), 0);

  /* 33 candidates. */
  make_record(&rec);
  len = encode(&rec, text);
  char *list = strstr(text, "[") + 1;
  char one[] = "{\"type\":\"host\",\"addr\":\"1.2.3.4\",\"port\":1,"
               "\"priority\":1},";
  char more[TEXT_MAX];
  size_t at = (size_t)(list - text), n = 0;
  n += (size_t)snprintf(more, sizeof(more), "%.*s", (int)at, text);
  for (int i = 0; i < RDV_RECORD_MAX_CANDIDATES - 4; i++)
    n += (size_t)snprintf(more + n, sizeof(more) - n, "%s", one);
  n += (size_t)snprintf(more + n, sizeof(more) - n, "%s", list);
  expect_decode_error(more, n, QP_ERR_PROTOCOL,
                      "\"candidates\" has more than 32 elements");
}

static void expect_check_error(const rdv_record *rec, const char *session,
                               rdv_role role, uint64_t now,
                               const char *message) {
  assert_int_equal(
      rdv_record_check(rec, session, role, now, RDV_RECORD_DEFAULT_MAX_AGE_MS),
      QP_ERR_RENDEZVOUS);
  if (strstr(qp_last_error(), message) == NULL)
    fail_msg("expected \"%s\" in \"%s\"", message, qp_last_error());
}

static void stale_and_foreign_records_are_rejected(void **state) {
  (void)state;
  rdv_record rec;
  make_record(&rec);
  uint64_t max_age = RDV_RECORD_DEFAULT_MAX_AGE_MS;
  assert_int_equal(rdv_record_check(&rec, "sess", RDV_ROLE_SERVER,
                                    PUBLISHED_MS + max_age, max_age),
                   0);
  assert_int_equal(rdv_record_check(&rec, "sess", RDV_ROLE_SERVER,
                                    PUBLISHED_MS - max_age, max_age),
                   0);
  expect_check_error(&rec, "sess", RDV_ROLE_SERVER, PUBLISHED_MS + 600000,
                     "the server's rendezvous record for session \"sess\" is "
                     "600 s old (the limit is 120 s): it was probably left by "
                     "an earlier run");
  expect_check_error(&rec, "sess", RDV_ROLE_SERVER, PUBLISHED_MS - 600000,
                     "is dated 600 s in the future: the two machines' clocks "
                     "disagree");
  expect_check_error(&rec, "other", RDV_ROLE_SERVER, PUBLISHED_MS,
                     "rendezvous record is for session \"sess\", not "
                     "\"other\"");
  expect_check_error(&rec, "sess", RDV_ROLE_CLIENT, PUBLISHED_MS,
                     "was published by a server; expected the client's");
  uint64_t now = rdv_record_now_unix_ms();
  assert_true(now > PUBLISHED_MS);
  rec.time_ms = now;
  assert_int_equal(rdv_record_check(&rec, "sess", RDV_ROLE_SERVER, now, 0), 0);
  assert_string_equal(rdv_role_to_string((rdv_role)7), "?");
  assert_string_equal(rdv_cand_type_to_string(RDV_CAND_PREDICTED), "predicted");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(record_roundtrips),
      cmocka_unit_test(largest_record_fits),
      cmocka_unit_test(encode_refuses_bad_fields),
      cmocka_unit_test(malformed_records_are_rejected),
      cmocka_unit_test(every_truncation_is_rejected),
      cmocka_unit_test(unknown_members_and_escapes_are_accepted),
      cmocka_unit_test(mapped_candidates),
      cmocka_unit_test(other_versions_are_named),
      cmocka_unit_test(oversized_records_are_rejected),
      cmocka_unit_test(stale_and_foreign_records_are_rejected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

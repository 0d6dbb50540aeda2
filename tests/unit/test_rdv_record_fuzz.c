/* ctest: labels=unit */
/* A bounded, deterministic mutation fuzz of the rendezvous record parser:
 * it must never crash (ASan/UBSan watch every run), and whatever it accepts
 * must encode and decode back to the same record. fuzz/fuzz_rdv_record.c is
 * the open-ended libFuzzer version. */
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

#define FUZZ_ITERATIONS 100000
#define FUZZ_SEED UINT32_C(20240601)
/* Mutations stack up to this many per input. */
#define FUZZ_MAX_MUTATIONS 4
/* Inputs may grow a little past the record limit, to hit that check. */
#define FUZZ_BUF (RDV_RECORD_MAX_SIZE + 256)

static uint32_t rng_state = FUZZ_SEED;

static uint32_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

static size_t rng_below(size_t n) { return n == 0 ? 0 : rng() % n; }

/* Bytes that steer a JSON parser into its interesting branches. */
static const char interesting[] = "{}[]\",:\\/0123456789-+.eEtrufalsn \x01\x7f"
                                  "\xc3\xa9\xed\xf0\xff";

static char random_byte(void) {
  if (rng() % 2)
    return interesting[rng_below(sizeof(interesting) - 1)];
  return (char)rng();
}

static size_t mutate(char *buf, size_t len) {
  size_t pos = rng_below(len + 1), n;
  switch (rng() % 6) {
  case 0: /* flip a bit */
    if (len > 0)
      buf[rng_below(len)] ^= (char)(1u << (rng() % 8));
    return len;
  case 1: /* overwrite a byte */
    if (len > 0)
      buf[rng_below(len)] = random_byte();
    return len;
  case 2: /* insert a byte */
    if (len >= FUZZ_BUF)
      return len;
    memmove(buf + pos + 1, buf + pos, len - pos);
    buf[pos] = random_byte();
    return len + 1;
  case 3: /* delete a run */
    n = rng_below(len - pos < 16 ? len - pos + 1 : 17);
    memmove(buf + pos, buf + pos + n, len - pos - n);
    return len - n;
  case 4: /* duplicate a run in place */
    n = rng_below(64);
    if (pos + n > len || len + n > FUZZ_BUF)
      return len;
    memmove(buf + pos + n, buf + pos, len - pos);
    return len + n;
  default: /* truncate */
    return pos;
  }
}

static void make_seed(rdv_record *rec, int variant) {
  rdv_record_init(rec, variant % 2 ? RDV_ROLE_CLIENT : RDV_ROLE_SERVER,
                  variant ? "caf\xc3\xa9 \"session\"" : "s");
  snprintf(rec->ufrag, sizeof(rec->ufrag), "ufrag+/9");
  snprintf(rec->pwd, sizeof(rec->pwd), "abcdefghijklmnopqrstuvwxyz");
  memset(rec->fingerprint, 'a', QP_FINGERPRINT_SIZE - 1);
  rec->nat.port_delta = -3;
  rdv_record_add_candidate(rec, RDV_CAND_HOST, "10.0.0.1", 1000, 7);
  rdv_record_add_candidate(rec, RDV_CAND_SRFLX, "2001:db8::42", 2000, 8);
  if (variant)
    rdv_record_add_candidate(rec, RDV_CAND_PREDICTED, "::1", 3000, 9);
  rec->time_ms = 1700000000000;
}

/* Accepted input: its re-encoding must decode to the same encoding. */
static void check_accepted(const rdv_record *rec) {
  char once[RDV_RECORD_MAX_SIZE + 1], twice[RDV_RECORD_MAX_SIZE + 1];
  size_t len1, len2;
  rdv_record back;
  assert_int_equal(rdv_record_encode(rec, once, sizeof(once), &len1), 0);
  assert_int_equal(rdv_record_decode(once, len1, &back), 0);
  assert_int_equal(rdv_record_encode(&back, twice, sizeof(twice), &len2), 0);
  assert_int_equal(len1, len2);
  assert_memory_equal(once, twice, len1);
}

static void record_parser_survives_mutations(void **state) {
  (void)state;
  enum { SEEDS = 3 };
  char seeds[SEEDS][RDV_RECORD_MAX_SIZE + 1];
  size_t seed_len[SEEDS];
  for (int i = 0; i < SEEDS; i++) {
    rdv_record rec;
    make_seed(&rec, i);
    assert_int_equal(
        rdv_record_encode(&rec, seeds[i], sizeof(seeds[i]), &seed_len[i]), 0);
  }
  char *buf = malloc(FUZZ_BUF);
  int accepted = 0;
  for (int it = 0; it < FUZZ_ITERATIONS; it++) {
    int s = (int)rng_below(SEEDS);
    size_t len = seed_len[s];
    memcpy(buf, seeds[s], len);
    int mutations = 1 + (int)rng_below(FUZZ_MAX_MUTATIONS);
    for (int m = 0; m < mutations; m++)
      len = mutate(buf, len);
    /* An exact-size copy, so ASan catches any read past the input. */
    char *input = malloc(len > 0 ? len : 1);
    memcpy(input, buf, len);
    rdv_record rec;
    int rc = rdv_record_decode(input, len, &rec);
    free(input);
    if (rc == 0) {
      accepted++;
      check_accepted(&rec);
    } else {
      assert_int_equal(rc, QP_ERR_PROTOCOL);
      assert_true(qp_last_error()[0] != '\0');
    }
  }
  free(buf);
  print_message("%d of %d mutated records accepted\n", accepted,
                FUZZ_ITERATIONS);
  /* Some mutations are harmless (whitespace, priority digits), so some
   * inputs are accepted; if none were, the mutator is broken. */
  assert_true(accepted > 0 && accepted < FUZZ_ITERATIONS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(record_parser_survives_mutations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fuzz_rdv_record.c: libFuzzer target for the rendezvous record parser.
 *
 * Any input must be either rejected with QP_ERR_PROTOCOL or accepted; an
 * accepted record must encode, and its encoding must decode to a record
 * that encodes to the same bytes. Build with -DQP_FUZZ=ON (clang), run
 * e.g. `fuzz_rdv_record -max_len=9000 corpus/`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rendezvous/rdv_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rdv_record rec, back;
  int rc = rdv_record_decode((const char *)data, size, &rec);
  if (rc != 0) {
    if (rc != QP_ERR_PROTOCOL)
      abort();
    return 0;
  }
  char once[RDV_RECORD_MAX_SIZE + 1], twice[RDV_RECORD_MAX_SIZE + 1];
  size_t len1, len2;
  if (rdv_record_encode(&rec, once, sizeof(once), &len1) != 0 ||
      rdv_record_decode(once, len1, &back) != 0 ||
      rdv_record_encode(&back, twice, sizeof(twice), &len2) != 0 ||
      len1 != len2 || memcmp(once, twice, len1) != 0)
    abort();
  return 0;
}

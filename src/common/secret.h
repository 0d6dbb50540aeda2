/*
 * secret.h: comparing secrets (HMACs, certificate fingerprints) without
 * letting the time taken say where two values first differ.
 */
#ifndef QP_COMMON_SECRET_H
#define QP_COMMON_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when the len bytes at a and b are equal. Reads every byte whatever
 * it finds (the accumulator is volatile, so the compiler cannot stop at the
 * first difference). The lengths themselves are not secret. */
bool secret_equal(const uint8_t *a, const uint8_t *b, size_t len);

#endif

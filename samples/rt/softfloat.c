// SPDX-License-Identifier: MIT
/*
 * IEEE-754 binary32 arithmetic on bit patterns, rounded to nearest-even:
 * what the guests use to check the device's f32 kernels bit for bit.
 *
 * Why not the FPU: guest C is built with -mgeneral-regs-only because on
 * some hosts (nested KVM on AMD among them) every x87/SSE instruction in a
 * guest traps and KVM's emulator gives up, which would make the samples
 * host-dependent.  Integer code runs everywhere, and a correctly rounded
 * add and multiply are all the built-in kernels' references need.
 */
#include "rt.h"

#define F32_SIGN(x) ((x) >> 31)
#define F32_EXP(x) (((x) >> 23) & 0xff)
#define F32_FRAC(x) ((x) & 0x7fffffu)
#define F32_INF 0x7f800000u
#define F32_DEFAULT_NAN 0xffc00000u /* what x86 returns for invalid ops */
#define F32_QUIET 0x00400000u

static bool rt_f32_isnan(uint32_t x)
{
	return F32_EXP(x) == 0xff && F32_FRAC(x);
}

/* value = sig * 2^(exp - 150), exactly; round once and pack. */
static uint32_t rt_f32_pack(uint32_t sign, int32_t exp, uint64_t sig)
{
	uint64_t mant, rnd, bits;
	int32_t e;
	int lz;

	if (!sig)
		return sign << 31;
	lz = __builtin_clzll(sig);
	sig <<= lz;
	e = exp - lz + 40; /* biased exponent if the top 24 bits were the mantissa */
	if (e < 1) {
		int sh = 1 - e;

		sig = sh >= 64 ? (sig != 0) : (sig >> sh) | ((sig << (64 - sh)) != 0);
		e = 1;
	}
	mant = sig >> 40;
	rnd = sig & ((1ull << 40) - 1);
	if (rnd > (1ull << 39) || (rnd == (1ull << 39) && (mant & 1)))
		mant++;
	/* The hidden bit carries into the exponent field, which also turns a
	 * subnormal that rounded up into the smallest normal. */
	bits = ((uint64_t)(e - 1) << 23) + mant;
	if (bits >= F32_INF)
		return (sign << 31) | F32_INF;
	return (sign << 31) | (uint32_t)bits;
}

static void rt_f32_unpack(uint32_t x, int32_t *exp, uint64_t *mant)
{
	if (F32_EXP(x)) {
		*exp = (int32_t)F32_EXP(x);
		*mant = F32_FRAC(x) | 0x800000u;
	} else {
		*exp = 1;
		*mant = F32_FRAC(x);
	}
}

uint32_t rt_f32_mul(uint32_t a, uint32_t b)
{
	uint32_t sign = F32_SIGN(a) ^ F32_SIGN(b);
	int32_t ea, eb;
	uint64_t ma, mb;

	if (rt_f32_isnan(a))
		return a | F32_QUIET;
	if (rt_f32_isnan(b))
		return b | F32_QUIET;
	if (F32_EXP(a) == 0xff || F32_EXP(b) == 0xff) {
		if ((a << 1) == 0 || (b << 1) == 0)
			return F32_DEFAULT_NAN; /* inf * 0 */
		return (sign << 31) | F32_INF;
	}
	rt_f32_unpack(a, &ea, &ma);
	rt_f32_unpack(b, &eb, &mb);
	return rt_f32_pack(sign, ea + eb - 150, ma * mb);
}

static uint32_t rt_f32_add_special(uint32_t a, uint32_t b)
{
	if (rt_f32_isnan(a))
		return a | F32_QUIET;
	if (rt_f32_isnan(b))
		return b | F32_QUIET;
	if (F32_EXP(a) == 0xff && F32_EXP(b) == 0xff && F32_SIGN(a) != F32_SIGN(b))
		return F32_DEFAULT_NAN; /* inf - inf */
	return F32_EXP(a) == 0xff ? a : b;
}

uint32_t rt_f32_add(uint32_t a, uint32_t b)
{
	uint32_t sa = F32_SIGN(a), sb = F32_SIGN(b), sign;
	int32_t ea, eb, d;
	uint64_t ma, mb, x, y, s;

	if (F32_EXP(a) == 0xff || F32_EXP(b) == 0xff)
		return rt_f32_add_special(a, b);
	rt_f32_unpack(a, &ea, &ma);
	rt_f32_unpack(b, &eb, &mb);
	if (ea < eb || (ea == eb && ma < mb)) {
		uint32_t t = a;

		a = b, b = t;
		sa = F32_SIGN(a), sb = F32_SIGN(b);
		rt_f32_unpack(a, &ea, &ma);
		rt_f32_unpack(b, &eb, &mb);
	}
	/* 39 guard bits below the mantissa and a sticky bit make the one
	 * rounding in rt_f32_pack exact. */
	d = ea - eb;
	x = ma << 39;
	y = mb << 39;
	if (d >= 63)
		y = y != 0;
	else if (d > 0)
		y = (y >> d) | ((y << (64 - d)) != 0);
	s = sa == sb ? x + y : x - y;
	sign = sa;
	if (!s)
		return (sa == sb ? sa : 0) << 31;
	return rt_f32_pack(sign, ea - 39, s);
}

uint32_t rt_f32_from_i32(int32_t v)
{
	return v < 0 ? rt_f32_pack(1, 150, 0 - (uint64_t)(int64_t)v) :
		       rt_f32_pack(0, 150, (uint64_t)v);
}

/* Decimal with `decimals` places (at most 6), rounded half up in the last
 * place; values too large for that print in powers of two. */
char *rt_f32_str(char *buf, size_t len, uint32_t x, int decimals)
{
	uint64_t scale = 1, mant, v, v2;
	int32_t exp, sh;
	char frac[8];

	if (rt_f32_isnan(x) || F32_EXP(x) == 0xff) {
		rt_snprintf(buf, len, "%s", rt_f32_isnan(x) ? "nan" :
			    F32_SIGN(x) ? "-inf" : "inf");
		return buf;
	}
	if (decimals > 6)
		decimals = 6;
	for (int i = 0; i < decimals; i++)
		scale *= 10;
	rt_f32_unpack(x, &exp, &mant);
	sh = exp - 150;
	if (sh > 20) {
		rt_snprintf(buf, len, "%s%lu*2^%d", F32_SIGN(x) ? "-" : "", mant, sh);
		return buf;
	}
	v = mant * scale; /* < 2^24 * 10^6 < 2^44 */
	if (sh >= 0)
		v <<= sh;
	else
		v = -sh >= 64 ? 0 : (v + (1ull << (-sh - 1))) >> -sh;
	v2 = v % scale;
	frac[0] = 0;
	if (decimals) {
		frac[0] = '.';
		for (int i = decimals; i > 0; i--, v2 /= 10)
			frac[i] = (char)('0' + v2 % 10);
		frac[decimals + 1] = 0;
	}
	rt_snprintf(buf, len, "%s%lu%s", F32_SIGN(x) ? "-" : "", v / scale, frac);
	return buf;
}

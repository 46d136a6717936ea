// SPDX-License-Identifier: MIT
/*
 * A small vsnprintf for the guests: %d %i %u %x %X %p %s %c %%, with
 * flags '-' and '0', width, precision, and the l, ll, z length modifiers.
 * No %f: guest code has no floating-point registers (see softfloat.c);
 * rt_f32_str() formats a binary32 value for %s.
 */
#include "rt.h"

struct rt_out {
	char *buf;
	size_t len, pos;
};

struct rt_spec {
	bool left, zero;
	int width, prec;
	int lng; /* 0, 1 (l, z), 2 (ll) */
};

static void rt_emit(struct rt_out *o, char c)
{
	if (o->pos + 1 < o->len)
		o->buf[o->pos] = c;
	o->pos++;
}

static void rt_emit_padded(struct rt_out *o, const struct rt_spec *sp,
			   const char *s, size_t n, bool neg)
{
	int pad = sp->width - (int)n - (neg ? 1 : 0);

	if (neg && sp->zero)
		rt_emit(o, '-');
	while (!sp->left && pad-- > 0)
		rt_emit(o, sp->zero ? '0' : ' ');
	if (neg && !sp->zero)
		rt_emit(o, '-');
	for (size_t i = 0; i < n; i++)
		rt_emit(o, s[i]);
	while (sp->left && pad-- > 0)
		rt_emit(o, ' ');
}

static size_t rt_utoa(uint64_t v, unsigned int base, bool upper, char *tmp)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char rev[24];
	size_t n = 0;

	do {
		rev[n++] = digits[v % base];
		v /= base;
	} while (v);
	for (size_t i = 0; i < n; i++)
		tmp[i] = rev[n - 1 - i];
	return n;
}

static int64_t rt_arg_signed(const struct rt_spec *sp, va_list *ap)
{
	if (sp->lng == 2)
		return va_arg(*ap, long long);
	if (sp->lng == 1)
		return va_arg(*ap, long);
	return va_arg(*ap, int);
}

static uint64_t rt_arg_unsigned(const struct rt_spec *sp, va_list *ap)
{
	if (sp->lng == 2)
		return va_arg(*ap, unsigned long long);
	if (sp->lng == 1)
		return va_arg(*ap, unsigned long);
	return va_arg(*ap, unsigned int);
}

static void rt_convert(struct rt_out *o, struct rt_spec *sp, char c, va_list *ap)
{
	char tmp[24];
	const char *s;
	int64_t sv;
	size_t n;

	switch (c) {
	case 'd':
	case 'i':
		sv = rt_arg_signed(sp, ap);
		n = rt_utoa(sv < 0 ? 0 - (uint64_t)sv : (uint64_t)sv, 10, false, tmp);
		rt_emit_padded(o, sp, tmp, n, sv < 0);
		break;
	case 'u':
	case 'x':
	case 'X':
		n = rt_utoa(rt_arg_unsigned(sp, ap), c == 'u' ? 10 : 16, c == 'X', tmp);
		rt_emit_padded(o, sp, tmp, n, false);
		break;
	case 'p':
		rt_emit(o, '0');
		rt_emit(o, 'x');
		n = rt_utoa((uint64_t)(uintptr_t)va_arg(*ap, void *), 16, false, tmp);
		rt_emit_padded(o, sp, tmp, n, false);
		break;
	case 's':
		s = va_arg(*ap, const char *);
		if (!s)
			s = "(null)";
		n = strlen(s);
		if (sp->prec >= 0 && (size_t)sp->prec < n)
			n = (size_t)sp->prec;
		rt_emit_padded(o, sp, s, n, false);
		break;
	case 'c':
		tmp[0] = (char)va_arg(*ap, int);
		rt_emit_padded(o, sp, tmp, 1, false);
		break;
	default:
		rt_emit(o, '%');
		rt_emit(o, c);
		break;
	}
}

static const char *rt_parse_spec(const char *f, struct rt_spec *sp)
{
	*sp = (struct rt_spec){ .prec = -1 };
	for (;; f++) {
		if (*f == '-')
			sp->left = true;
		else if (*f == '0')
			sp->zero = true;
		else
			break;
	}
	while (*f >= '0' && *f <= '9')
		sp->width = sp->width * 10 + (*f++ - '0');
	if (*f == '.') {
		sp->prec = 0;
		while (*++f >= '0' && *f <= '9')
			sp->prec = sp->prec * 10 + (*f - '0');
	}
	while (*f == 'l' || *f == 'z') {
		sp->lng = *f == 'z' ? 1 : sp->lng + 1;
		f++;
	}
	if (sp->left)
		sp->zero = false;
	return f;
}

int rt_vsnprintf(char *buf, size_t len, const char *fmt, va_list ap)
{
	struct rt_out o = { buf, len, 0 };
	struct rt_spec sp;
	va_list aq;

	va_copy(aq, ap);
	for (const char *f = fmt; *f; f++) {
		if (*f != '%') {
			rt_emit(&o, *f);
			continue;
		}
		if (f[1] == '%') {
			rt_emit(&o, '%');
			f++;
			continue;
		}
		f = rt_parse_spec(f + 1, &sp);
		if (!*f)
			break;
		rt_convert(&o, &sp, *f, &aq);
	}
	va_end(aq);
	if (len)
		buf[o.pos < len ? o.pos : len - 1] = 0;
	return (int)o.pos;
}

int rt_snprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = rt_vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

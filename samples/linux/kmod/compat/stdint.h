/* SPDX-License-Identifier: MIT */
/* The kernel has no <stdint.h>; <linux/types.h> defines the same
 * fixed-width names that uapi/gpup_vgpu.h uses. */
#ifndef GPUP_KMOD_STDINT_H
#define GPUP_KMOD_STDINT_H
#include <linux/types.h>
#endif

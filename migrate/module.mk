# migrate/hash_avx2.c is XXH3 built for AVX2; hash.c calls it only on a
# CPU that has AVX2, so it alone gets the flag.
$(O)/obj/migrate/hash_avx2.o: CFLAGS += -mavx2
$(BUILD)/fuzz/obj/migrate/hash_avx2.o: FUZZ_CFLAGS += -mavx2

/*
 * Copyright (C) ReplayForge contributors
 *
 * CRC32C (Castagnoli), with the SSE4.2 instruction where the CPU has it.
 */

#ifndef _RF_CRC32C_H_INCLUDED_
#define _RF_CRC32C_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


uint32_t rf_crc32c(uint32_t crc, const void *data, size_t n);


#endif /* _RF_CRC32C_H_INCLUDED_ */

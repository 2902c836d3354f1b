/* Wine 8 (Debian 12) has no ProcessPrng in bcryptprimitives.dll, which Rust's std >= 1.78 imports
 * on Windows; without it every Rust program exits with 53 under Wine. This shim provides it on
 * top of BCryptGenRandom. Test infrastructure only: never shipped with the product. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) {
            return FALSE;
        }
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

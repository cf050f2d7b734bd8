//! glibc's allocator, which here serves only C code (SQLite): Rust's allocations go to
//! jemalloc (`main.rs`), which hands freed pages back on its own.

use tokio_util::sync::CancellationToken;

/// How often memory SQLite freed is handed back to the operating system.
const RELEASE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Gives glibc a single arena; called first thing in `main`, before any thread that uses
/// glibc's allocator starts.
///
/// By default each thread that allocates gets an arena of its own, up to eight per core.
/// The store runs a thread per SQLite connection, and its connections come and go with the
/// load, so a busy hour spread SQLite's page caches over many arenas, and each kept the
/// fragments its last connection left: after a pass of housekeeping, resident memory stayed
/// 1.5 MiB higher. The store's few connections share the one arena's lock, which costs
/// little next to their disk writes (`scripts/bench-intake.sh` saw no change).
pub fn use_one_c_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// `M_ARENA_MAX` in glibc's `malloc.h`.
        const M_ARENA_MAX: i32 = -8;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only sets one of the allocator's tunables; it takes no pointer.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
        }
    }
}

/// Hands memory that SQLite freed back to the operating system every few seconds, so that
/// resident memory falls back after a burst closed the store's extra connections and their
/// page caches; glibc otherwise keeps freed pages in its arena.
pub async fn release_c_memory(shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RELEASE_EVERY) => {}
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            unsafe extern "C" {
                fn malloc_trim(pad: usize) -> i32;
            }
            // SAFETY: malloc_trim only returns free pages to the kernel; it takes no pointer
            // and is safe to call from any thread at any time.
            unsafe {
                malloc_trim(0);
            }
        }
    }
}

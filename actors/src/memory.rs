//! Giving freed memory back to the system. glibc's allocator keeps what a program frees for its own
//! reuse, so after thousands of sessions hibernate (their actors and records freed) the process's
//! resident memory would stay at its crest although the heap is mostly empty. `malloc_trim(0)`
//! returns the free pages of every arena to the kernel; the supervisor calls it, off the actors'
//! threads, after a round of sessions went to sleep. Elsewhere than glibc it does nothing.

/// Returns free heap pages to the system (glibc); a no-op on other allocators.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds as free; it takes its own locks
    // and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

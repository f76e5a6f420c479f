fn main() -> std::process::ExitCode {
    return_large_buffers_to_the_system();
    herald::cli::main()
}

/// glibc raises its mmap threshold as large blocks are freed, after which a
/// batch request's megabytes come from the heap and stay there. A fixed
/// threshold keeps blocks of 256 KiB and more mapped, and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers_to_the_system() {
    const M_MMAP_THRESHOLD: i32 = -3;
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers_to_the_system() {}

//! Exit codes, as podman gives them: the command's own; 128+n when signal n killed it (see
//! `sys::waitpid`); 126 when it was found but could not be executed; 127 when it was not found.

/// The command was not found.
pub const NOT_FOUND: u8 = 127;
/// The command was found but could not be executed.
pub const NOT_EXECUTABLE: u8 = 126;

/// The exit code for a command that could not start with `errno`.
pub fn not_started(errno: i32) -> u8 {
    if errno == libc::ENOENT {
        NOT_FOUND
    } else {
        NOT_EXECUTABLE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_podmans() {
        assert_eq!(not_started(libc::ENOENT), 127);
        assert_eq!(not_started(libc::EACCES), 126);
        assert_eq!(not_started(libc::ENOEXEC), 126);
    }
}

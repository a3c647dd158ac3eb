//! Running unprivileged: the switch from root to `--user` / `--group` (`[server] user` and
//! `group`) once the listeners are bound, and the refusal to run as root without one.
//!
//! The switch sets the supplementary groups to the one group, then the group, then the
//! user, and checks that it took: no real or effective id is `0` afterwards and the way
//! back to root is closed (`setuid(0)` fails), else the proxy does not start. glibc's
//! `setuid`/`setgid`/`setgroups` apply to every thread of the process (the workers, the
//! health checker, the control runtime), which the tests check in `/proc/PID/task/*/status`.
//!
//! The alternative to starting as root is the capability to bind ports below 1024 alone:
//! `setcap cap_net_bind_service=+ep /usr/local/bin/switchyard`, or systemd's
//! `AmbientCapabilities=CAP_NET_BIND_SERVICE` (see `packaging/`).

use nix::unistd::{self, Gid, Group, Uid, User};

use crate::config::ProcessConfig;

/// The environment variable that allows running as root without `--user`, as
/// `--allow-root` does (for containers and CI).
pub const ALLOW_ROOT_ENV: &str = "SWITCHYARD_ALLOW_ROOT";

/// Why the process could not give up root.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The user name is unknown to the system.
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    /// The group name is unknown to the system.
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    /// A system call refused.
    #[error("cannot switch to user {user:?}: {call} failed: {errno}")]
    Call {
        /// The user asked for.
        user: String,
        /// Which call.
        call: &'static str,
        /// Why.
        errno: nix::errno::Errno,
    },
    /// The switch did not take.
    #[error("still privileged after switching to user {0:?}: refusing to serve")]
    StillRoot(String),
}

/// The message when root is not allowed, naming the ways on.
pub const ROOT_REFUSED: &str = "refusing to run as root. Either drop root once the ports are \
bound with --user NAME [--group NAME] (or `[server] user` in the file), or allow it \
explicitly with --allow-root or SWITCHYARD_ALLOW_ROOT=1 (containers, CI). To bind ports \
below 1024 without root: setcap cap_net_bind_service=+ep $(command -v switchyard), or \
AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit.";

/// True when the process runs as root and nothing (a user to switch to, `--allow-root`,
/// [`ALLOW_ROOT_ENV`]`=1`) makes that acceptable: the binary then refuses to start.
pub fn root_refused(process: &ProcessConfig, allow_root: bool) -> bool {
    let allowed = allow_root || std::env::var(ALLOW_ROOT_ENV).is_ok_and(|v| v.trim() == "1");
    unistd::geteuid().is_root() && process.user.is_none() && !allowed
}

/// Switches the whole process to `process.user` (and its group, or `process.group`);
/// nothing without a user. Call once the listeners are bound and before serving.
pub fn drop_privileges(process: &ProcessConfig) -> Result<(), PrivilegeError> {
    let Some(name) = &process.user else {
        return Ok(());
    };
    let user = lookup_user(name)?;
    let gid = match &process.group {
        Some(group) => lookup_group(group)?,
        None => user.gid,
    };
    let call = |call: &'static str, errno| PrivilegeError::Call {
        user: name.clone(),
        call,
        errno,
    };
    if unistd::geteuid() != user.uid {
        unistd::setgroups(&[gid]).map_err(|e| call("setgroups", e))?;
    }
    unistd::setgid(gid).map_err(|e| call("setgid", e))?;
    unistd::setuid(user.uid).map_err(|e| call("setuid", e))?;
    let dropped = !user.uid.is_root()
        && !unistd::getuid().is_root()
        && !unistd::geteuid().is_root()
        && unistd::getgid() == gid
        && unistd::getegid() == gid
        && unistd::setuid(Uid::from_raw(0)).is_err();
    if !dropped {
        return Err(PrivilegeError::StillRoot(name.clone()));
    }
    tracing::info!(user = %user.name, uid = user.uid.as_raw(), gid = gid.as_raw(), "running unprivileged");
    Ok(())
}

fn lookup_user(name: &str) -> Result<User, PrivilegeError> {
    let found = match name.parse::<u32>() {
        Ok(id) => User::from_uid(Uid::from_raw(id)),
        Err(_) => User::from_name(name),
    };
    found
        .ok()
        .flatten()
        .ok_or_else(|| PrivilegeError::UnknownUser(name.to_owned()))
}

fn lookup_group(name: &str) -> Result<Gid, PrivilegeError> {
    let found = match name.parse::<u32>() {
        Ok(id) => Group::from_gid(Gid::from_raw(id)),
        Err(_) => Group::from_name(name),
    };
    found
        .ok()
        .flatten()
        .map(|g| g.gid)
        .ok_or_else(|| PrivilegeError::UnknownGroup(name.to_owned()))
}

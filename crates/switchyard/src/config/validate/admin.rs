//! `[admin]`: the admin listener (never a proxy listener's address), the two endpoint
//! paths (each a path, and not the same) and the status `/health` answers when `DOWN`.

use super::listener::overlaps;
use super::Checker;
use crate::config::file::AdminFile;
use crate::config::{AdminConfig, ListenAddr, ListenerConfig};

/// The admin settings; the defaults without an `[admin]` table.
pub(super) fn admin(
    file: Option<&AdminFile>,
    listeners: &[ListenerConfig],
    c: &mut Checker<'_>,
) -> AdminConfig {
    let mut admin = AdminConfig::default();
    let Some(file) = file else {
        return admin;
    };
    admin.listen = listen(file, listeners, c);
    paths(file, &mut admin, c);
    distinct_paths(file, &admin, c);
    if let Some(status) = &file.down_status {
        match http::StatusCode::from_u16(*status.get_ref()) {
            Ok(s) if (200..600).contains(&s.as_u16()) => admin.down_status = s,
            _ => c.error(
                status.span(),
                "admin.down_status",
                "must be a status code from 200 to 599",
            ),
        }
    }
    admin
}

/// `admin.listen`, which must not overlap a proxy listener.
fn listen(
    file: &AdminFile,
    listeners: &[ListenerConfig],
    c: &mut Checker<'_>,
) -> Option<ListenAddr> {
    let listen = file.listen.as_ref()?;
    match listen.get_ref().0.parse::<ListenAddr>() {
        Ok(addr) if listeners.iter().any(|l| overlaps(&l.addr, &addr)) => {
            c.error(
                listen.span(),
                "admin.listen",
                format!("{addr} is also a proxy listener's address"),
            );
            None
        }
        Ok(addr) => Some(addr),
        Err(e) => {
            c.error(
                listen.span(),
                "admin.listen",
                format!("{:?} {e}", listen.get_ref().0),
            );
            None
        }
    }
}

/// `admin.health_path` and `admin.metrics_path`, each starting with `/`.
fn paths(file: &AdminFile, admin: &mut AdminConfig, c: &mut Checker<'_>) {
    for (value, key, slot) in [
        (
            &file.health_path,
            "admin.health_path",
            &mut admin.health_path,
        ),
        (
            &file.metrics_path,
            "admin.metrics_path",
            &mut admin.metrics_path,
        ),
    ] {
        if let Some(v) = value {
            if v.get_ref().0.starts_with('/') {
                *slot = v.get_ref().0.clone();
            } else {
                c.error(v.span(), key, "must be a path starting with /");
            }
        }
    }
}

/// The two endpoints on one path: reported on the one the file sets.
fn distinct_paths(file: &AdminFile, admin: &AdminConfig, c: &mut Checker<'_>) {
    if admin.health_path != admin.metrics_path {
        return;
    }
    match (&file.metrics_path, &file.health_path) {
        (Some(m), _) => c.error(
            m.span(),
            "admin.metrics_path",
            "is the same as admin.health_path",
        ),
        (None, Some(h)) => c.error(
            h.span(),
            "admin.health_path",
            "is the same as admin.metrics_path (default /metrics)",
        ),
        (None, None) => {}
    }
}

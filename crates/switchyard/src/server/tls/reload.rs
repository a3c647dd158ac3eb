//! Certificates reloaded in place: when their files change ([`watch`], polling their
//! contents as `reload.rs` does the configuration's) and on SIGHUP
//! ([`crate::Server::reload_certificates`]). Each certificate is reloaded on its own: a new
//! pair that cannot be served (unreadable, not PEM, key not the certificate's, expired) is
//! rejected with one log line naming the file, and the pair in force stays. The same holds for
//! the client CA bundle. A configuration reload reads every file anew through
//! [`TlsAcceptor::prepare`] instead, all or nothing.
//!
//! The watcher acts on a file only once it has seen the same contents on two polls in a row,
//! so a certificate and its key replaced one after the other make one reload, not a rejected
//! half-written pair.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::store::CertEntry;
use super::{assemble, build, TlsAcceptor, Verifier};
use crate::config::tls::{self, Digest};
use crate::server::Server;
use crate::telemetry::audit::AuditLog;

/// What a file held at the previous poll.
type Seen = HashMap<PathBuf, Digest>;

/// The digest of a file that cannot be read.
const UNREADABLE: Digest = Digest([0; 32]);

/// Watches the certificate, key and CA files of every HTTPS listener in force, checked every
/// `interval`, and reloads those that change. Runs until dropped.
pub async fn watch(server: &Server, interval: Duration) {
    let mut seen = Seen::new();
    loop {
        tokio::time::sleep(interval).await;
        let mut changed = false;
        for acceptor in server.tls_acceptors() {
            changed |= acceptor.refresh(Some(&mut seen), server.shared().audit.as_deref());
        }
        if changed {
            server.publish_certificates();
        }
    }
}

// === impl TlsAcceptor ===

impl TlsAcceptor {
    /// Reloads each certificate whose files changed, and the client CA bundle if it changed;
    /// with `seen` (the watcher), only files whose contents were the same at the previous
    /// poll. Returns true when something new is in force. Each certificate reloaded or
    /// rejected is a line in the `audit` log, with the SHA-256 of its file before and after.
    pub fn refresh(&self, mut seen: Option<&mut Seen>, audit: Option<&AuditLog>) -> bool {
        let current = self.current.load_full();
        let now = SystemTime::now();
        let mut changed = false;
        let mut entries = Vec::with_capacity(current.store.entries().len());
        for entry in current.store.entries() {
            let files = &entry.files;
            let digests = (
                observe(&files.cert, &mut seen),
                observe(&files.key, &mut seen),
            );
            let on_disk = (digests.0 .0, digests.1 .0);
            let settled = digests.0 .1 && digests.1 .1;
            if on_disk == entry.digests || !settled || self.already_rejected(on_disk) {
                entries.push(entry.clone());
                continue;
            }
            match tls::load_pair(&files.cert, &files.key, now) {
                Ok(pair) => {
                    let new = CertEntry::new(files.clone(), pair);
                    tracing::info!(
                        listener = %self.listener,
                        file = %files.cert.display(),
                        names = ?new.names.to_strings(),
                        expires = %tls::format_utc(new.info.not_after),
                        "certificate reloaded"
                    );
                    if let Some(audit) = audit {
                        audit.event(
                            "certificate_reloaded",
                            self.audit_fields(entry, on_disk, None),
                        );
                    }
                    entries.push(Arc::new(new));
                    changed = true;
                }
                Err(e) => {
                    tracing::error!(listener = %self.listener, "certificate rejected, keeping the one in force: {e}");
                    if let Some(audit) = audit {
                        let fields = self.audit_fields(entry, on_disk, Some(e.to_string()));
                        audit.event("certificate_rejected", fields);
                    }
                    self.reject(on_disk);
                    entries.push(entry.clone());
                }
            }
        }
        let verifier = self.refresh_verifier(&current, &mut seen, &mut changed);
        if !changed {
            return false;
        }
        match assemble(current.settings.clone(), entries, verifier, &self.ticketer) {
            Ok(loaded) => {
                self.commit(Arc::new(loaded));
                true
            }
            Err(e) => {
                tracing::error!(listener = %self.listener, "certificates not reloaded, keeping those in force: {e}");
                false
            }
        }
    }

    /// The client verifier to serve with: a new one when the CA file changed and can be
    /// used (`changed` is then set), else the one in force.
    fn refresh_verifier(
        &self,
        current: &super::Loaded,
        seen: &mut Option<&mut Seen>,
        changed: &mut bool,
    ) -> Option<Verifier> {
        let (old, old_digest) = current.verifier.clone()?;
        let auth = current.settings.client_auth.as_ref()?;
        let (digest, settled) = observe(&auth.ca, seen);
        if digest == old_digest || !settled || self.already_rejected((digest, digest)) {
            return Some((old, old_digest));
        }
        match build::client_verifier(&current.settings) {
            Ok(Some(new)) => {
                tracing::info!(listener = %self.listener, file = %auth.ca.display(), "client CA bundle reloaded");
                *changed = true;
                Some(new)
            }
            Ok(None) => Some((old, old_digest)),
            Err(e) => {
                tracing::error!(listener = %self.listener, "client CA bundle rejected, keeping the one in force: {e}");
                self.reject((digest, digest));
                Some((old, old_digest))
            }
        }
    }

    /// An audit line's fields: the listener, the files and their digests before and after.
    fn audit_fields(
        &self,
        entry: &CertEntry,
        on_disk: (Digest, Digest),
        error: Option<String>,
    ) -> serde_json::Value {
        let mut fields = serde_json::json!({
            "listener": self.listener.to_string(),
            "file": entry.files.cert.display().to_string(),
            "sha256_before": entry.digests.0.to_hex(),
            "sha256_after": on_disk.0.to_hex(),
            "key_changed": entry.digests.1 != on_disk.1,
        });
        if let Some(error) = error {
            fields["error"] = serde_json::json!(error);
        }
        fields
    }

    fn already_rejected(&self, digests: (Digest, Digest)) -> bool {
        self.rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&digests)
    }

    fn reject(&self, digests: (Digest, Digest)) {
        let mut rejected = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !rejected.contains(&digests) {
            rejected.push(digests);
        }
    }
}

/// The digest of the file at `path` now, and whether it is settled: always without `seen`,
/// else when the previous poll saw the same contents (recorded for the next poll).
fn observe(path: &Path, seen: &mut Option<&mut Seen>) -> (Digest, bool) {
    let digest = Digest::of_file(path).unwrap_or(UNREADABLE);
    let settled = match seen {
        None => true,
        Some(seen) => seen.insert(path.to_owned(), digest) == Some(digest),
    };
    (digest, settled)
}

//! People: passwords (argon2id, from the `argon2` crate), sign-in with throttling, sessions
//! (a random token in an HttpOnly cookie, stored hashed, new at every sign-in, expiring,
//! revoked by sign-out and by a password change), invitations by single-use link, and the
//! instance's first owner (a one-time set-up token printed at start, or the settings).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::Rng;

use crate::config::AccountSettings;
use crate::crypto::sha256_hex;
use crate::domain::{FieldError, MemberRole, User, UserId, WorkspaceId};
use crate::store::{Invitation, Session, Store, StoreError};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Longest password accepted (argon2 hashes anything; a bound keeps requests cheap).
pub const MAX_PASSWORD: usize = 256;

/// Why a people operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    /// Bad fields.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// Wrong email or password (never which of the two).
    #[error("wrong email or password")]
    BadCredentials,
    /// Too many failures: try again after this many seconds.
    #[error("too many failed sign-ins; try again in {retry_after_secs} s")]
    Throttled {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The link or token is unknown, used or expired.
    #[error("this link is invalid, used or expired")]
    BadToken,
    /// The store failed (an email taken: [`StoreError::Conflict`]).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// A new session: the cookie's token (shown once) and the CSRF token to echo.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who.
    pub user: User,
    /// The session token (the cookie's value); only its hash is stored.
    pub token: String,
    /// Echoed in `X-CSRF-Token` by requests that change something.
    pub csrf_token: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// A random token: 32 bytes, URL-safe base64.
pub fn random_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// An argon2id hash of `password` with a fresh salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, PeopleError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PeopleError::Hash(e.to_string()))
}

/// Whether `password` matches the stored `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// [`verify_password`] on the blocking pool, against `hash` or, for an unknown email, the
/// [`decoy_hash`] (made there too, the first time): argon2 is built to be slow, and a burst of
/// sign-ins on the request threads would stall every other request (health checks included).
async fn verify_off_thread(password: &str, hash: Option<String>) -> bool {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let hash = match &hash {
            Some(hash) => hash.as_str(),
            None => decoy_hash(),
        };
        verify_password(&password, hash)
    })
    .await
    .unwrap_or(false)
}

/// [`hash_password`] on the blocking pool, for the reason [`verify_off_thread`] gives.
async fn hash_off_thread(password: &str) -> Result<String, PeopleError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| PeopleError::Hash(e.to_string()))?
}

/// Sign-in attempts in this process, one lock per subject (`email:…`, `client:…`).
static ATTEMPTS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
> = std::sync::LazyLock::new(Default::default);

/// Waits until no other attempt for any of `subjects` is in progress in this process, and holds
/// them until the returned guards drop. Locks are taken in the order given (the email first),
/// so two attempts never wait for each other in a circle; locks nobody holds are dropped.
async fn one_at_a_time(subjects: &[String]) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
    let locks: Vec<_> = {
        let mut attempts = ATTEMPTS.lock().unwrap_or_else(|e| e.into_inner());
        attempts.retain(|_, lock| std::sync::Arc::strong_count(lock) > 1);
        subjects
            .iter()
            .map(|s| attempts.entry(s.clone()).or_default().clone())
            .collect()
    };
    let mut guards = Vec::with_capacity(locks.len());
    for lock in locks {
        guards.push(lock.lock_owned().await);
    }
    guards
}

/// A hash no password matches, verified against when the email is unknown so that both cases
/// take as long.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_token()).unwrap_or_default())
}

/// The email as stored: trimmed and lowercased.
pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_email(email: &str, errors: &mut Vec<FieldError>) {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        errors.push(FieldError::new("email", "must be an email address"));
    }
}

fn check_password(field: &str, password: &str, errors: &mut Vec<FieldError>) {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        errors.push(FieldError::new(
            field,
            format!("must be {MIN_PASSWORD}-{MAX_PASSWORD} characters"),
        ));
    }
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            "must be 1-200 printable characters",
        ));
    }
}

/// Creates a user after checking the fields.
pub async fn create_user(
    store: &dyn Store,
    email: &str,
    name: &str,
    password: &str,
    instance_owner: bool,
) -> Result<User, PeopleError> {
    let email = normalise_email(email);
    let mut errors = Vec::new();
    check_email(&email, &mut errors);
    check_name(name, &mut errors);
    check_password("password", password, &mut errors);
    if !errors.is_empty() {
        return Err(PeopleError::Invalid(errors));
    }
    let hash = hash_off_thread(password).await?;
    Ok(store
        .create_user(&email, name.trim(), &hash, instance_owner)
        .await?)
}

async fn open_session(
    store: &dyn Store,
    settings: &AccountSettings,
    user: User,
) -> Result<SignedIn, PeopleError> {
    let token = random_token();
    let csrf_token = random_token();
    let expires_at = Utc::now() + ChronoDuration::seconds(settings.session_ttl_secs as i64);
    store
        .create_session(&token_hash(&token), user.id, &csrf_token, expires_at)
        .await?;
    Ok(SignedIn {
        user,
        token,
        csrf_token,
        expires_at,
    })
}

/// Signs in with an email and a password. Failures are counted per email and per client
/// address; past `sign_in_attempts` in the window for the email (four times as many for the
/// address, which may be a proxy), sign-in is refused, even with the right password, until the
/// window has passed. Every sign-in makes a new session: a token a client
/// held before is never adopted.
pub async fn sign_in(
    store: &dyn Store,
    settings: &AccountSettings,
    email: &str,
    password: &str,
    client: Option<&str>,
) -> Result<SignedIn, PeopleError> {
    let email = normalise_email(email);
    let now = Utc::now();
    let window = ChronoDuration::seconds(settings.sign_in_window_secs as i64);
    let since = now - window;
    let subjects: Vec<String> = std::iter::once(format!("email:{email}"))
        .chain(client.map(|c| format!("client:{c}")))
        .collect();
    // Concurrent attempts for one email or address wait for each other: the count below, the
    // password check and the record of a failure are one step, or a burst of parallel guesses
    // would all pass the count before any failure was recorded.
    let _turn = one_at_a_time(&subjects).await;
    for (i, subject) in subjects.iter().enumerate() {
        // A client address may be a proxy in front of many people: it gets more room.
        let limit = if i == 0 {
            settings.sign_in_attempts
        } else {
            settings.sign_in_attempts.saturating_mul(4)
        };
        if store.sign_in_failures(subject, since).await? >= limit {
            return Err(PeopleError::Throttled {
                retry_after_secs: settings.sign_in_window_secs,
            });
        }
    }
    let found = store.user_by_email(&email).await?;
    let hash = found.as_ref().map(|(_, h)| h.clone());
    let matches = verify_off_thread(password, hash).await;
    match found {
        Some((user, _)) if matches => {
            store.clear_sign_in_failures(&subjects[0]).await?;
            tracing::info!(user = %user.id, "signed in");
            open_session(store, settings, user).await
        }
        _ => {
            for subject in &subjects {
                store.record_sign_in_failure(subject, since, now).await?;
            }
            tracing::info!("sign-in refused");
            Err(PeopleError::BadCredentials)
        }
    }
}

/// The live session of `token` and its user.
pub async fn session(
    store: &dyn Store,
    token: &str,
) -> Result<Option<(Session, User)>, StoreError> {
    let Some(session) = store.session(&token_hash(token), Utc::now()).await? else {
        return Ok(None);
    };
    Ok(store.user(session.user_id).await?.map(|u| (session, u)))
}

/// Ends the session of `token`.
pub async fn sign_out(store: &dyn Store, token: &str) -> Result<(), StoreError> {
    store.revoke_session(&token_hash(token)).await
}

/// Changes a password after checking the current one; every session of the user ends, and a
/// new one is returned for the caller.
pub async fn change_password(
    store: &dyn Store,
    settings: &AccountSettings,
    user: &User,
    current: &str,
    new: &str,
) -> Result<SignedIn, PeopleError> {
    let mut errors = Vec::new();
    check_password("new_password", new, &mut errors);
    if !errors.is_empty() {
        return Err(PeopleError::Invalid(errors));
    }
    let stored = store
        .password_hash(user.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("user {}", user.id)))?;
    if !verify_off_thread(current, Some(stored)).await {
        return Err(PeopleError::Invalid(vec![FieldError::new(
            "current_password",
            "is wrong",
        )]));
    }
    store
        .set_password(user.id, &hash_off_thread(new).await?)
        .await?;
    let ended = store.revoke_user_sessions(user.id).await?;
    tracing::info!(user = %user.id, sessions_ended = ended, "password changed");
    open_session(store, settings, user.clone()).await
}

/// Sets a user's password from the command line (every session ends).
pub async fn reset_password(
    store: &dyn Store,
    user: UserId,
    password: &str,
) -> Result<(), PeopleError> {
    let mut errors = Vec::new();
    check_password("password", password, &mut errors);
    if !errors.is_empty() {
        return Err(PeopleError::Invalid(errors));
    }
    store
        .set_password(user, &hash_off_thread(password).await?)
        .await?;
    store.revoke_user_sessions(user).await?;
    Ok(())
}

/// Invites `email` to workspace `ws` with `role`; returns the link's token (shown once).
pub async fn invite(
    store: &dyn Store,
    settings: &AccountSettings,
    ws: WorkspaceId,
    email: &str,
    role: MemberRole,
    invited_by: &str,
) -> Result<(String, Invitation), PeopleError> {
    let email = normalise_email(email);
    let mut errors = Vec::new();
    check_email(&email, &mut errors);
    if !errors.is_empty() {
        return Err(PeopleError::Invalid(errors));
    }
    let token = random_token();
    let invitation = Invitation {
        workspace_id: ws,
        email,
        role,
        expires_at: Utc::now() + ChronoDuration::hours(settings.invitation_hours as i64),
    };
    store
        .create_invitation(&token_hash(&token), &invitation, invited_by)
        .await?;
    Ok((token, invitation))
}

/// Accepts an invitation: creates the person (or, for an email that has an account, checks its
/// password) and gives them the invited role. The link works once.
pub async fn accept_invitation(
    store: &dyn Store,
    settings: &AccountSettings,
    token: &str,
    name: &str,
    password: &str,
) -> Result<SignedIn, PeopleError> {
    let Some(invitation) = store
        .take_invitation(&token_hash(token), Utc::now())
        .await?
    else {
        return Err(PeopleError::BadToken);
    };
    let user = match store.user_by_email(&invitation.email).await? {
        Some((user, hash)) => {
            if !verify_off_thread(password, Some(hash.clone())).await {
                return Err(PeopleError::BadCredentials);
            }
            user
        }
        None => create_user(store, &invitation.email, name, password, false).await?,
    };
    store
        .set_membership(user.id, invitation.workspace_id, invitation.role)
        .await?;
    tracing::info!(user = %user.id, workspace = %invitation.workspace_id, role = %invitation.role, "invitation accepted");
    open_session(store, settings, user).await
}

/// A fresh one-time set-up token when nobody can sign in yet (no user exists); `None` otherwise.
pub async fn setup_token(store: &dyn Store) -> Result<Option<String>, StoreError> {
    // Set-up is done once the instance has an owner, not once anyone exists: a person invited
    // with the operator key before then must not end it.
    if store.count_instance_owners().await? > 0 {
        return Ok(None);
    }
    let token = random_token();
    store.set_setup_token(&token_hash(&token)).await?;
    Ok(Some(token))
}

/// Creates the instance owner with the set-up token (which then stops working) and signs in.
pub async fn complete_setup(
    store: &dyn Store,
    settings: &AccountSettings,
    token: &str,
    email: &str,
    name: &str,
    password: &str,
) -> Result<SignedIn, PeopleError> {
    if store.count_instance_owners().await? > 0
        || !store.take_setup_token(&token_hash(token)).await?
    {
        return Err(PeopleError::BadToken);
    }
    let user = match create_user(store, email, name, password, true).await {
        Ok(user) => user,
        Err(e) => {
            // The token was used up by a request that failed: let it work again.
            store.set_setup_token(&token_hash(token)).await?;
            return Err(e);
        }
    };
    store
        .set_membership(user.id, WorkspaceId::DEFAULT, MemberRole::Owner)
        .await?;
    tracing::info!(user = %user.id, "instance owner created");
    open_session(store, settings, user).await
}

/// Creates the instance owner from the settings when no user exists (unattended installs).
pub async fn ensure_configured_owner(
    store: &dyn Store,
    settings: &AccountSettings,
) -> Result<Option<User>, PeopleError> {
    use secrecy::ExposeSecret;
    let (Some(email), Some(password)) = (&settings.owner_email, &settings.owner_password) else {
        return Ok(None);
    };
    if store.count_instance_owners().await? > 0 {
        return Ok(None);
    }
    let user = create_user(store, email, "Owner", password.expose_secret(), true).await?;
    store
        .set_membership(user.id, WorkspaceId::DEFAULT, MemberRole::Owner)
        .await?;
    tracing::info!(user = %user.id, "instance owner created from the settings");
    Ok(Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterx", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        let again = hash_password("correct horse battery").unwrap();
        assert_ne!(hash, again, "every hash has its own salt");
    }

    #[test]
    fn emails_and_passwords_are_checked() {
        let cases = [
            ("ana@example.com", true),
            ("a@b.co", true),
            ("no-at-sign", false),
            ("@example.com", false),
            ("ana@localhost", false),
            ("ana @example.com", false),
        ];
        for (email, ok) in cases {
            let mut errors = Vec::new();
            check_email(email, &mut errors);
            assert_eq!(errors.is_empty(), ok, "{email}");
        }
        let mut errors = Vec::new();
        check_password("password", "short", &mut errors);
        check_password("password", &"x".repeat(MAX_PASSWORD + 1), &mut errors);
        assert_eq!(errors.len(), 2);
        assert_eq!(normalise_email("  Ana@Example.COM "), "ana@example.com");
    }

    /// Defect: argon2 ran on the request threads, so a burst of sign-ins stalled every other
    /// request (200 parallel attempts held `/healthz` for 3.9 s). On a runtime with one thread,
    /// a task that ticks every millisecond keeps ticking while sign-ins check passwords: its
    /// longest pause stays well under the time one check takes, which it would wait out if the
    /// check ran on that thread.
    #[test]
    fn checking_a_password_leaves_the_runtime_free() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        use std::time::{Duration, Instant};

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let mut settings = crate::Settings::default();
            settings.data.dir = dir.path().to_path_buf();
            let store = crate::store::open(&settings.database_url(), 2)
                .await
                .unwrap();
            store.migrate().await.unwrap();
            let password = "correct horse battery";
            create_user(store.as_ref(), "ana@example.com", "Ana", password, true)
                .await
                .unwrap();
            let hash = hash_password(password).unwrap();
            let one_check = (0..3)
                .map(|_| {
                    let started = Instant::now();
                    assert!(verify_password(password, &hash));
                    started.elapsed()
                })
                .min()
                .unwrap();

            let accounts = AccountSettings {
                sign_in_attempts: 100,
                ..AccountSettings::default()
            };
            // The operating system may pause the thread too on a busy machine: a few tries,
            // one of which must stay under the bound. Checks on the thread never do.
            let mut pauses = Vec::new();
            for _ in 0..5 {
                let stop = Arc::new(AtomicBool::new(false));
                let ticking = stop.clone();
                let ticker = tokio::spawn(async move {
                    let mut last = Instant::now();
                    let mut longest = Duration::ZERO;
                    while !ticking.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        let now = Instant::now();
                        longest = longest.max(now - last);
                        last = now;
                    }
                    longest
                });
                tokio::task::yield_now().await;
                for _ in 0..4 {
                    let refused = sign_in(
                        store.as_ref(),
                        &accounts,
                        "ana@example.com",
                        "a wrong guess",
                        None,
                    )
                    .await;
                    assert!(refused.is_err());
                }
                stop.store(true, Ordering::Relaxed);
                let longest = ticker.await.unwrap();
                if longest < one_check.mul_f32(0.6) {
                    return;
                }
                pauses.push(longest);
            }
            panic!("the runtime stalled for {pauses:?}; one password check takes {one_check:?}");
        });
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}

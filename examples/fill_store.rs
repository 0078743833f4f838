//! Fill a data directory with N users and N API keys through the store API (realistic record
//! sizes), for the scale benchmark. Also creates `bench@example.com` (password
//! `violet-tractor-41-moss`) with one key, printed as `key=…`.
//! Usage: `fill_store DATA_DIR N`.

use std::path::PathBuf;
use std::time::Instant;

use posta::auth::{api_key, password};
use posta::model::{ApiKey, Origin, Role, User};
use posta::store::{self, Store};
use uuid::Uuid;

fn user(i: usize, hash: &str, now: i64) -> User {
    User {
        id: Uuid::new_v4(),
        name: format!("Bench User {i}"),
        email: format!("user{i:07}@bench.example.com"),
        password_hash: Some(hash.to_owned()),
        role: if i == 0 { Role::Admin } else { Role::User },
        active: true,
        created_at: now,
        updated_at: now,
        last_login_at: Some(now),
        totp: None,
        pending_totp: None,
        email_verified_at: Some(now),
        origin: Origin::Admin,
        scheduled_deletion_at: None,
        login_alerts: true,
    }
}

fn key(u: &User, hash: [u8; 32], prefix: String, now: i64) -> ApiKey {
    ApiKey {
        id: Uuid::new_v4(),
        user_id: u.id,
        name: "mailer".into(),
        prefix,
        hash,
        scopes: vec!["send".into()],
        allowed_ips: Vec::new(),
        created_at: now,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: fill_store DATA_DIR N")?);
    let n: usize = args.next().ok_or("usage: fill_store DATA_DIR N")?.parse()?;
    let store = Store::open(&dir.join("posta.redb"))?;
    let now = posta::clock::Clock::now(&posta::clock::SystemClock);
    let cost = password::Cost {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };
    let hash = password::hash("violet-tractor-41-moss", cost)?;
    let started = Instant::now();
    let batch = 20_000;
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let h = hash.clone();
        store.write_blocking(move |tx| {
            for j in i..end {
                let u = user(j, &h, now);
                store::user::insert(tx, &u)?;
                // Keys from a fast deterministic hash: realistic size, no need for randomness.
                let k = api_key::hash(&format!("posta_fill_{j}"));
                store::api_key::put(tx, &key(&u, k, format!("posta_{j:04}"), now))?;
            }
            Ok(())
        })?;
        i = end;
        if i % 200_000 == 0 {
            eprintln!("{i} users in {:.1}s", started.elapsed().as_secs_f64());
        }
    }
    let bench_user = User {
        email: "bench@example.com".into(),
        role: Role::User,
        ..user(n, &hash, now)
    };
    let minted = api_key::generate()?;
    let k = key(&bench_user, minted.hash, minted.prefix.clone(), now);
    store.write_blocking(|tx| {
        store::user::insert(tx, &bench_user)?;
        store::api_key::put(tx, &k)
    })?;
    drop(store);
    let size = std::fs::metadata(dir.join("posta.redb"))?.len();
    println!(
        "users={} file_bytes={size} bytes_per_user={}",
        n + 1,
        size / (n as u64 + 1)
    );
    println!("key={}", minted.key);
    Ok(())
}

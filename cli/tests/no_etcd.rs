//! A `tally` built without the `etcd` feature (the default build, which
//! needs no `protoc`) refuses `tally run --store` and says how to build it
//! in. Runs only in such a build (`cargo test -p tally-cli`).
#![cfg(not(feature = "etcd"))]
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn a_store_in_a_build_without_etcd_is_refused_with_the_build_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["run", "--store", "etcd://127.0.0.1:2379"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("this tally was built without etcd support")
            && err.contains("cargo build --release --features etcd --bin tally"),
        "{err}"
    );
}

//! The public specs of the corpora and the sample API's document load and compile.
#![allow(clippy::panic, reason = "test helpers outside #[test] functions")]

use std::path::{Path, PathBuf};

use portcullis_contract::{CompileOptions, Contract};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(p: &Path) -> portcullis_contract::Loaded {
    match Contract::load(&[p], Path::new("/"), &CompileOptions::default()) {
        Ok(l) => l,
        Err(e) => panic!("{}: {e:#?}", p.display()),
    }
}

#[test]
fn the_sample_api_document_compiles() {
    let l = load(&root().join("crates/portcullis-sample/openapi.yaml"));
    assert!(l.contract.operations().len() >= 15, "{}", l.contract.operations().len());
    assert!(l.contract.operations().iter().any(|o| &**o.id() == "exportCustomers" && o.security().is_some()));
}

/// The corpora live beside the project (`../shared/corpora/specs`); skipped with a note when absent.
fn corpus(name: &str) -> Option<PathBuf> {
    let p = root().join("../shared/corpora/specs").join(name);
    let alt = PathBuf::from("/work/shared/corpora/specs").join(name);
    if p.exists() {
        Some(p)
    } else if alt.exists() {
        Some(alt)
    } else {
        eprintln!("corpus {name} not found; skipped");
        None
    }
}

#[test]
fn vampi_compiles() {
    let Some(p) = corpus("vampi-openapi3.yml") else { return };
    let l = load(&p);
    assert!(l.contract.operations().len() >= 10);
}

#[test]
fn crapi_compiles() {
    let Some(p) = corpus("crapi-openapi.json") else { return };
    let l = load(&p);
    assert!(l.contract.operations().len() >= 30, "{}", l.contract.operations().len());
}

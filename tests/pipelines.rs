//! Every shipped study and prompt file parses against the schema, so examples never rot.

use std::path::Path;

#[test]
fn shipped_pipelines_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            clipflow::config::load(&p, &[]).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 3, "expected demo, pokemon and dtd studies");
}

#[test]
fn shipped_prompt_templates_have_placeholders() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/prompts");
    for (file, count) in [("dtd.yaml", 8), ("imagenet.yaml", 80)] {
        let list: Vec<String> =
            serde_norway::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        assert_eq!(list.len(), count, "{file}");
        assert!(list.iter().all(|t| t.contains("{}")), "{file}");
    }
}

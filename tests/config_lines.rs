//! Every config error about a key in the file carries `file:line:col`: the ones serde finds
//! while reading (typos, wrong types), and the ones found after (a negative σ, `k: [0]`,
//! `part_size: 0`, a missing model, an empty model list, a perplexity no sample can reach), and
//! a key given twice names its second occurrence.

mod common;

use common::{clipflow, fixture, image_folder, stderr, study};

/// A valid study; `{}` placeholders are filled below. Lines are numbered in the comments.
fn text(data: &str, model: &str) -> String {
    format!(
        "name: t\n\
         seed: 3\n\
         dataset:\n\
         \x20 format: folder\n\
         \x20 path: {data}\n\
         noise:\n\
         \x20 - kind: gaussian\n\
         \x20   sigma: [0.1]\n\
         models:\n\
         \x20 - path: {model}\n\
         texts:\n\
         \x20 prompts:\n\
         \x20   templates: ['a photo of a {{}}.']\n\
         runtime:\n\
         \x20 part_size: 4\n\
         analysis:\n\
         \x20 retrieval:\n\
         \x20   k: [1, 5]\n\
         \x20 projection:\n\
         \x20   methods: [pca, tsne]\n\
         \x20   perplexities: [2]\n\
         \x20 cluster:\n\
         \x20   methods: [kmeans, autoencoder, dec]\n\
         \x20   autoencoder:\n\
         \x20     layers: [16, 4]\n\
         \x20   dec:\n\
         \x20     tol: 0.001\n"
    )
}

#[test]
fn every_key_error_names_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = image_folder(tmp.path()).display().to_string();
    let model = fixture("models/xenova").display().to_string();
    let good = text(&data, &model);
    let s = study(tmp.path(), &good);
    let o = clipflow(&["validate", s.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));

    for (from, to, want) in [
        // (line 8) a negative noise level
        ("    sigma: [0.1]", "    sigma: [-0.1]", "study.yaml:8:"),
        // (line 18) a zero cut-off: the list element
        ("    k: [1, 5]", "    k: [1, 0]", "study.yaml:18:"),
        // (line 15) no part can hold zero items
        (
            "  part_size: 4",
            "  part_size: 0",
            "study.yaml:15:3: runtime.part_size",
        ),
        // (line 10) a model folder that does not exist
        (model.as_str(), "/nonexistent/model", "study.yaml:10:"),
        // (line 21) a perplexity the 9-image dataset cannot reach
        (
            "    perplexities: [2]",
            "    perplexities: [50]",
            "study.yaml:21:",
        ),
        // (lines 23, 25, 27) the deep clustering methods' settings: an unknown method, a zero
        // layer width, a tolerance that is not a fraction
        (
            "[kmeans, autoencoder, dec]",
            "[kmeans, autoencodr, dec]",
            "study.yaml:23:",
        ),
        (
            "      layers: [16, 4]",
            "      layers: [16, 0]",
            "study.yaml:25:",
        ),
        ("      tol: 0.001", "      tol: 2", "study.yaml:27:"),
        // (line 4) a format given twice: the second one
        (
            "  format: folder\n",
            "  format: folder\n  format: dtd\n",
            "study.yaml:5:3:",
        ),
        // (line 17) a stage that does not exist, with a suggestion
        (
            "  retrieval:",
            "  retreival:",
            "study.yaml:17:3: analysis.retreival",
        ),
    ] {
        assert!(good.contains(from), "{from}");
        std::fs::write(&s, good.replacen(from, to, 1)).unwrap();
        let o = clipflow(&["validate", s.to_str().unwrap()]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{to}: {e}");
        assert!(e.contains(want), "{to}: expected {want} in: {e}");
    }
    // (line 11) a preprocessing rule no reference library uses, and a rule for a model whose
    // image tower the study does not use.
    let with_rules = |rules: &str| {
        good.replacen(
            &format!("  - path: {model}\n"),
            &format!("  - path: {model}\n    preprocess: {rules}\n"),
            1,
        )
    };
    std::fs::write(
        &s,
        with_rules("{crop_rounding: floor, transparency: white}"),
    )
    .unwrap();
    let o = clipflow(&["validate", s.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (rules, want) in [
        (
            "{crop_rounding: ceil}",
            "models.0.preprocess.crop_rounding: unknown variant `ceil`, expected `half_even` or \
             `floor`",
        ),
        (
            "{transparency: black}",
            "models.0.preprocess.transparency: unknown variant `black`, expected `drop` or `white`",
        ),
        (
            "{crop: floor}",
            "models.0.preprocess.crop: unknown field `crop`, expected `crop_rounding` or \
             `transparency`; did you mean `crop_rounding`?",
        ),
    ] {
        std::fs::write(&s, with_rules(rules)).unwrap();
        let o = clipflow(&["validate", s.to_str().unwrap()]);
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{rules}: {e}");
        assert!(
            e.contains("study.yaml:11:") && e.contains(want),
            "{rules}: expected line 11 and {want} in: {e}"
        );
    }
    std::fs::write(&s, with_rules("{crop_rounding: floor}")).unwrap();
    let e = stderr(&clipflow(&[
        "validate",
        s.to_str().unwrap(),
        "--set",
        "models.0.towers=[text]",
    ]));
    assert!(
        e.contains("study.yaml:11:")
            && e.contains("models.0.preprocess")
            && e.contains("no image tower"),
        "{e}"
    );

    // An empty model list points at `models:`.
    let empty = good.replace(&format!("models:\n  - path: {model}\n"), "models: []\n");
    std::fs::write(&s, empty).unwrap();
    let e = stderr(&clipflow(&["validate", s.to_str().unwrap()]));
    assert!(e.contains("study.yaml:9:1: models"), "{e}");
    // The suggestion for the stage typo.
    std::fs::write(&s, good.replacen("  retrieval:", "  retreival:", 1)).unwrap();
    let e = stderr(&clipflow(&["validate", s.to_str().unwrap()]));
    assert!(e.contains("did you mean `retrieval`"), "{e}");
    // A value set on the command line is blamed on the --set, not on a line.
    std::fs::write(&s, &good).unwrap();
    let o = clipflow(&[
        "validate",
        s.to_str().unwrap(),
        "--set",
        "analysis.retrieval.k=[0]",
    ]);
    let e = stderr(&o);
    assert!(e.contains("(set by --set analysis.retrieval.k=[0])"), "{e}");
}

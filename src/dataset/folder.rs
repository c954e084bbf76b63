//! Image folders: torchvision's ImageFolder (`root/<class>/**/<image>`) and the DTD release
//! (`root/images/<class>/<image>` with split files `root/labels/<split>.txt`).

use std::path::{Path, PathBuf};

use super::listing::{ItemTable, NewItem};
use super::{DatasetError, ImageRef};

/// ImageFolder: each immediate subfolder of `root` is a class; images anywhere below it belong
/// to that class. Files directly in `root` are not part of any class and are reported in the
/// returned notes, as torchvision ignores them too.
pub fn list_image_folder(
    root: &Path,
    extensions: Vec<String>,
) -> Result<(ItemTable, Vec<String>), DatasetError> {
    let mut items = ItemTable::new(0, Vec::new());
    let mut notes = Vec::new();
    let mut stray = 0usize;
    for entry in sorted_entries(root)? {
        if entry.is_dir() {
            let class = file_name(&entry);
            let mut files = Vec::new();
            walk(&entry, &extensions, &mut files)?;
            for path in files {
                push(&mut items, &relative_id(root, &path), &class, path)?;
            }
        } else if has_extension(&entry, &extensions) {
            stray += 1;
        }
    }
    if stray > 0 {
        notes.push(format!(
            "{}: {stray} image(s) directly in the root folder have no class folder and were skipped",
            root.display()
        ));
    }
    items.finish();
    Ok((items, notes))
}

fn push(items: &mut ItemTable, id: &str, class: &str, path: PathBuf) -> Result<(), DatasetError> {
    items
        .push(NewItem {
            id: Some(id),
            label: Some(class),
            captions: &[],
            image: ImageRef::File(path.clone()),
            attributes: &[],
        })
        .map_err(|message| DatasetError::Io { path, message })
}

/// DTD: `split` names a file `labels/<split>.txt` whose lines are `<class>/<image>` paths under
/// `images/`; `all` takes every image under `images/`.
pub fn list_dtd(
    root: &Path,
    split: &str,
    extensions: Vec<String>,
) -> Result<ItemTable, DatasetError> {
    let images = root.join("images");
    if !images.is_dir() {
        return Err(DatasetError::NotFound {
            path: format!("{} (a DTD release has an images/ folder)", images.display()),
        });
    }
    if split == "all" {
        return Ok(list_image_folder(&images, extensions)?.0);
    }
    let labels = root.join("labels");
    let split_file = labels.join(format!("{split}.txt"));
    if !split_file.is_file() {
        let mut available: Vec<String> = std::fs::read_dir(&labels)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter_map(|n| n.strip_suffix(".txt").map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        available.sort();
        available.push("all".into());
        return Err(DatasetError::Config {
            key: "split",
            message: format!(
                "no split file {} (splits: {})",
                split_file.display(),
                available.join(", ")
            ),
        });
    }
    let text = std::fs::read_to_string(&split_file).map_err(|e| DatasetError::Io {
        path: split_file.clone(),
        message: e.to_string(),
    })?;
    let mut items = ItemTable::new(0, Vec::new());
    for (n, line) in text.lines().enumerate() {
        let rel = line.trim();
        if rel.is_empty() {
            continue;
        }
        let Some((class, _)) = rel.split_once('/') else {
            return Err(DatasetError::Row {
                path: split_file.clone(),
                row: n as u64 + 1,
                message: format!("`{rel}` is not of the form <class>/<image>"),
            });
        };
        // A listed image that is missing is not a listing error: it becomes that item's
        // read error in errors.parquet, and the run goes on.
        push(&mut items, rel, class, images.join(rel))?;
    }
    items.finish();
    Ok(items)
}

fn walk(dir: &Path, extensions: &[String], out: &mut Vec<PathBuf>) -> Result<(), DatasetError> {
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            walk(&entry, extensions, out)?;
        } else if has_extension(&entry, extensions) {
            out.push(entry);
        }
    }
    Ok(())
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let rd = std::fs::read_dir(dir).map_err(|e| DatasetError::Io {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut entries: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| !file_name(p).starts_with('.'))
        .collect();
    entries.sort();
    Ok(entries)
}

fn has_extension(path: &Path, extensions: &[String]) -> bool {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .is_some_and(|e| extensions.contains(&e))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn relative_id(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn image_folder_labels_from_parent_and_skips_strays() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("b/2.png"));
        touch(&d.path().join("b/1.JPG"));
        touch(&d.path().join("a/nested/3.jpg"));
        touch(&d.path().join("a/readme.txt"));
        touch(&d.path().join("stray.png"));
        let (items, notes) = list_image_folder(d.path(), vec!["jpg".into(), "png".into()]).unwrap();
        let ids: Vec<_> = (0..items.len()).map(|i| items.id(i).into_owned()).collect();
        assert_eq!(ids, ["a/nested/3.jpg", "b/1.JPG", "b/2.png"]);
        assert_eq!(items.label(0), Some("a"));
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn dtd_split_files_and_unknown_split() {
        let d = tempfile::tempdir().unwrap();
        touch(&d.path().join("images/banded/banded_0001.jpg"));
        touch(&d.path().join("images/dotted/dotted_0001.jpg"));
        std::fs::create_dir_all(d.path().join("labels")).unwrap();
        std::fs::write(
            d.path().join("labels/train1.txt"),
            "dotted/dotted_0001.jpg\n\n",
        )
        .unwrap();
        let items = list_dtd(d.path(), "train1", vec!["jpg".into()]).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items.label(0), Some("dotted"));
        assert_eq!(
            list_dtd(d.path(), "all", vec!["jpg".into()]).unwrap().len(),
            2
        );
        let e = list_dtd(d.path(), "test9", vec!["jpg".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("train1") && e.contains("dataset.split"), "{e}");
    }
}

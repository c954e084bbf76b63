//! Image folders: torchvision's ImageFolder (`root/<class>/**/<image>`) and the DTD release
//! (`root/images/<class>/<image>` with split files `root/labels/<split>.txt`).
//!
//! Folder links are followed, but each folder is listed at most once, by (device, inode): a
//! link loop (`ln -s . again`) or a second path to a folder adds nothing. The real tree is
//! listed first, so a file reachable both directly and through a link keeps its real path
//! (and class). A link that leads outside the dataset folder is not followed unless
//! `dataset.allow_paths_outside` is set; either case is reported in the notes.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::files::FileAccess;
use super::listing::{ItemTable, NewItem};
use super::{DatasetError, ImageRef};

/// ImageFolder: each immediate subfolder of `root` is a class; images anywhere below it belong
/// to that class. Files directly in `root` are not part of any class and are reported in the
/// returned notes, as torchvision ignores them too.
pub fn list_image_folder(
    root: &Path,
    extensions: &[String],
    access: &FileAccess,
) -> Result<(ItemTable, Vec<String>), DatasetError> {
    let mut walker = Walker::new(root, extensions, access)?;
    let mut classes: Vec<(String, Vec<PathBuf>, Vec<PathBuf>)> = Vec::new();
    let mut stray = 0usize;
    for entry in sorted_entries(root)? {
        match kind(&entry) {
            Kind::Dir(_) => {
                let (mut files, mut links) = (Vec::new(), Vec::new());
                walker.walk_real(&entry, &mut files, &mut links)?;
                classes.push((file_name(&entry), files, links));
            }
            Kind::DirLink => classes.push((file_name(&entry), Vec::new(), vec![entry])),
            Kind::Other => {
                if has_extension(&entry, extensions) {
                    stray += 1;
                }
            }
        }
    }
    // Links only once the whole real tree is known, so a link never claims a folder that has
    // a real place of its own.
    for (_, files, links) in &mut classes {
        walker.follow(std::mem::take(links), files)?;
    }
    let mut items = ItemTable::new(0, Vec::new());
    for (class, files, _) in classes {
        for path in files {
            push(&mut items, &relative_id(root, &path), &class, path)?;
        }
    }
    items.finish();
    let mut notes = walker.notes();
    if stray > 0 {
        notes.push(format!(
            "{}: {stray} image(s) directly in the root folder have no class folder and were skipped",
            root.display()
        ));
    }
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
/// `images/`; `all` takes every image under `images/`. A listed path that leads outside the
/// dataset folder is not refused here: reading it fails, and that is the item's error.
pub fn list_dtd(
    root: &Path,
    split: &str,
    extensions: &[String],
    access: &FileAccess,
) -> Result<(ItemTable, Vec<String>), DatasetError> {
    let images = root.join("images");
    if !images.is_dir() {
        return Err(DatasetError::NotFound {
            path: format!("{} (a DTD release has an images/ folder)", images.display()),
        });
    }
    if split == "all" {
        return list_image_folder(&images, extensions, access);
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
    let io = |message: String| DatasetError::Io {
        path: split_file.clone(),
        message,
    };
    let bytes = access.read(&split_file).map_err(|e| io(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| io("not UTF-8 text".into()))?;
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
    Ok((items, Vec::new()))
}

/// What a folder entry is, links resolved one level.
enum Kind {
    /// A real folder, with its (device, inode).
    Dir((u64, u64)),
    /// A link to a folder.
    DirLink,
    /// Anything else: a file, a link to one, a broken link. Whether it can be read is decided
    /// when it is read.
    Other,
}

fn kind(path: &Path) -> Kind {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Kind::Other;
    };
    if meta.is_dir() {
        Kind::Dir((meta.dev(), meta.ino()))
    } else if meta.file_type().is_symlink() && std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        Kind::DirLink
    } else {
        Kind::Other
    }
}

/// Lists image files under folders, entering each folder at most once.
struct Walker<'a> {
    root: &'a Path,
    extensions: &'a [String],
    access: &'a FileAccess,
    /// (device, inode) of every folder entered.
    visited: HashSet<(u64, u64)>,
    /// Links to a folder already listed (loops, second paths), not followed.
    repeated: usize,
    /// Links that lead outside the dataset folder, not followed.
    outside: Vec<PathBuf>,
}

impl<'a> Walker<'a> {
    fn new(
        root: &'a Path,
        extensions: &'a [String],
        access: &'a FileAccess,
    ) -> Result<Walker<'a>, DatasetError> {
        let meta = std::fs::metadata(root).map_err(|e| DatasetError::Io {
            path: root.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Walker {
            root,
            extensions,
            access,
            visited: HashSet::from([(meta.dev(), meta.ino())]),
            repeated: 0,
            outside: Vec::new(),
        })
    }

    /// Appends the image files under `dir` in sorted depth-first order, entering real folders
    /// only; folder links found on the way are appended to `links` for [`Walker::follow`].
    fn walk_real(
        &mut self,
        dir: &Path,
        files: &mut Vec<PathBuf>,
        links: &mut Vec<PathBuf>,
    ) -> Result<(), DatasetError> {
        let meta = std::fs::metadata(dir).map_err(|e| DatasetError::Io {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        if !self.visited.insert((meta.dev(), meta.ino())) {
            self.repeated += 1;
            return Ok(());
        }
        // An explicit stack: folder depth is the user's, not the thread stack's.
        let mut stack: Vec<PathBuf> = sorted_entries(dir)?.into_iter().rev().collect();
        while let Some(entry) = stack.pop() {
            match kind(&entry) {
                Kind::Dir(key) => {
                    if self.visited.insert(key) {
                        stack.extend(sorted_entries(&entry)?.into_iter().rev());
                    } else {
                        self.repeated += 1;
                    }
                }
                Kind::DirLink => links.push(entry),
                Kind::Other => {
                    if has_extension(&entry, self.extensions) {
                        files.push(entry);
                    }
                }
            }
        }
        Ok(())
    }

    /// Follows folder links (and the links found behind them), each target folder once.
    fn follow(
        &mut self,
        links: Vec<PathBuf>,
        files: &mut Vec<PathBuf>,
    ) -> Result<(), DatasetError> {
        let mut pending: Vec<PathBuf> = links.into_iter().rev().collect();
        while let Some(link) = pending.pop() {
            let Ok(meta) = std::fs::metadata(&link) else {
                continue;
            };
            if self.visited.contains(&(meta.dev(), meta.ino())) {
                self.repeated += 1;
                continue;
            }
            if !self.access.permits(&link) {
                self.outside.push(link);
                continue;
            }
            let mut found = Vec::new();
            self.walk_real(&link, files, &mut found)?;
            pending.extend(found.into_iter().rev());
        }
        Ok(())
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.repeated > 0 {
            notes.push(format!(
                "{}: {} folder link(s) lead to a folder already listed (a link loop, or a second path to one folder) and were not followed; each image is listed once",
                self.root.display(),
                self.repeated
            ));
        }
        if !self.outside.is_empty() {
            let mut shown: Vec<String> = self
                .outside
                .iter()
                .take(5)
                .map(|p| relative_id(self.root, p))
                .collect();
            if self.outside.len() > 5 {
                shown.push(format!("and {} more", self.outside.len() - 5));
            }
            notes.push(format!(
                "{}: {} folder link(s) lead outside the dataset folder and were not followed (set dataset.allow_paths_outside: true to follow them): {}",
                self.root.display(),
                self.outside.len(),
                shown.join(", ")
            ));
        }
        notes
    }
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

    fn access(root: &Path) -> FileAccess {
        FileAccess::new(root, false, 1 << 20).unwrap()
    }

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
        let (items, notes) =
            list_image_folder(d.path(), &["jpg".into(), "png".into()], &access(d.path())).unwrap();
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
        let jpg = ["jpg".to_string()];
        let a = access(d.path());
        let items = list_dtd(d.path(), "train1", &jpg, &a).unwrap().0;
        assert_eq!(items.len(), 1);
        assert_eq!(items.label(0), Some("dotted"));
        assert_eq!(list_dtd(d.path(), "all", &jpg, &a).unwrap().0.len(), 2);
        let e = list_dtd(d.path(), "test9", &jpg, &a)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train1") && e.contains("dataset.split"), "{e}");
    }

    #[test]
    fn link_loops_and_second_paths_list_each_file_once() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("data");
        touch(&root.join("a/1.png"));
        touch(&root.join("a/deep/2.png"));
        touch(&root.join("b/3.png"));
        touch(&root.join(".store/4.png"));
        touch(&d.path().join("outside/5.png"));
        symlink(".", root.join("a/self")).unwrap();
        symlink(".", root.join("a/deep/again")).unwrap();
        symlink("..", root.join("a/deep/up")).unwrap();
        // Sorts before b: the link must not claim b's files for class a.
        symlink("../b", root.join("a/0_to_b")).unwrap();
        // A folder with no real place in the listing (hidden) is reached through its link.
        symlink("../.store", root.join("b/store")).unwrap();
        symlink("../../outside", root.join("b/out")).unwrap();
        let png = ["png".to_string()];
        let (items, notes) = list_image_folder(&root, &png, &access(&root)).unwrap();
        let ids: Vec<(String, &str)> = (0..items.len())
            .map(|i| (items.id(i).into_owned(), items.label(i).unwrap()))
            .collect();
        let ids: Vec<(&str, &str)> = ids.iter().map(|(i, l)| (i.as_str(), *l)).collect();
        assert_eq!(
            ids,
            [
                ("a/1.png", "a"),
                ("a/deep/2.png", "a"),
                ("b/3.png", "b"),
                ("b/store/4.png", "b")
            ]
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("4 folder link(s) lead to a folder already listed"),
            "{notes:?}"
        );
        assert!(
            notes[1].contains("b/out") && notes[1].contains("allow_paths_outside"),
            "{notes:?}"
        );

        let open = FileAccess::new(&root, true, 1 << 20).unwrap();
        let (items, notes) = list_image_folder(&root, &png, &open).unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(items.id(3), "b/out/5.png");
        assert_eq!(notes.len(), 1, "{notes:?}");
    }
}

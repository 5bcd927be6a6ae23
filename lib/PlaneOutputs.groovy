import java.nio.file.AtomicMoveNotSupportedException
import java.nio.file.FileSystemException
import java.nio.file.Files
import java.nio.file.LinkOption
import java.nio.file.Path
import java.nio.file.StandardCopyOption
import java.security.MessageDigest
import nextflow.file.FileHelper

/**
 * A plane's folder in --outdir holds this run's answer or nothing. Its result files are put there here (main.nf),
 * not by publishDir, so that a file that cannot be put in place fails its plane with the file system's reason
 * before the summary is written; a plane that failed has its folder, results of an earlier run included, set aside,
 * and a plane that succeeded has the files of an earlier run that this run did not write set aside.
 */
class PlaneOutputs {

    /** What a moved-aside folder of a failed plane is called: `<plane><SET_ASIDE>` beside the plane folders. */
    static final String SET_ASIDE = '.stale'

    /** Where `ophys-extraction apply-curation` records a curation, beside the plane's extraction.h5. */
    static final String CURATION_RECORD = 'extraction/curation.json'

    /**
     * The planes among `planeIds` whose folder in `outdir` holds a curation (CURATION_RECORD): a run would write its
     * own results over it, so main.nf stops before any task instead.
     */
    static List<String> curatedPlanes(Path outdir, List<String> planeIds) {
        return planeIds.findAll { Files.exists(outdir.resolve(it).resolve(CURATION_RECORD)) }
    }

    /** The suite2p folder of a plane (--suite2p_folder), and the digest of the iscell.npy written there. */
    static final String SUITE2P_PLANE = 'suite2p/plane0'
    static final String ISCELL_DIGEST = 'iscell.npy.sha256'

    /**
     * The planes among `planeIds` whose suite2p folder holds an iscell.npy other than the one its ISCELL_DIGEST
     * records (written by the pipeline and by apply-curation): suite2p's GUI saved a curation there that was not
     * applied, and a run would write over it (or set it aside), so main.nf stops before any task instead. A folder
     * without the digest (written before it was) cannot be told apart and is not counted.
     */
    static List<String> editedIscell(Path outdir, List<String> planeIds) {
        return planeIds.findAll { String id ->
            Path folder = outdir.resolve(id).resolve(SUITE2P_PLANE)
            Path iscell = folder.resolve('iscell.npy')
            Path record = folder.resolve(ISCELL_DIGEST)
            if (!Files.isRegularFile(iscell) || !Files.isRegularFile(record)) return false
            String recorded = new String(Files.readAllBytes(record), 'UTF-8').trim().tokenize()[0]
            return sha256(iscell) != recorded
        }
    }

    private static String sha256(Path file) {
        MessageDigest digest = MessageDigest.getInstance('SHA-256')
        Files.newInputStream(file).withCloseable { InputStream stream ->
            byte[] block = new byte[1 << 20]
            for (int n = stream.read(block); n > 0; n = stream.read(block)) digest.update(block, 0, n)
        }
        return digest.digest().encodeHex().toString()
    }

    /**
     * Puts `files` into `dir` as --publish_dir_mode `mode` says (copy, copyNoFollow, link, symlink, rellink, move),
     * each under a temporary name, then renamed, so a file with its final name is complete. Returns null, or one
     * line naming the first file that could not be put there and why (the OS error, e.g. No space left on device).
     */
    static String publish(List<Path> files, Path dir, String mode) {
        for (Path source : files) {
            Path target = dir.resolve(source.fileName.toString())
            Path partial = dir.resolve(".${source.fileName}.publishing")
            try {
                Files.createDirectories(dir)
                Files.deleteIfExists(partial)
                place(source, partial, mode)
                try {
                    Files.move(partial, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE)
                } catch (AtomicMoveNotSupportedException | UnsupportedOperationException ignored) {
                    // object stores (S3) have no atomic rename: a plain move, which they do as copy + delete
                    Files.move(partial, target, StandardCopyOption.REPLACE_EXISTING)
                }
                if (!Files.exists(target)) throw new IOException('not there after it was written')
            } catch (IOException err) {
                try { Files.deleteIfExists(partial) } catch (IOException ignored) { }
                return "${target.toUriString()}: could not be published (${reason(err)})".toString()
            }
        }
        return null
    }

    private static void place(Path source, Path target, String mode) {
        switch (mode) {
            case 'copy': FileHelper.copyPath(source, target); break
            case 'copyNoFollow': FileHelper.copyPath(source, target, LinkOption.NOFOLLOW_LINKS); break
            case 'link': Files.createLink(target, source); break
            case 'symlink': Files.createSymbolicLink(target, source.toAbsolutePath()); break
            case 'rellink': Files.createSymbolicLink(target, target.toAbsolutePath().parent.relativize(source.toAbsolutePath())); break
            case 'move': FileHelper.movePath(source, target); break
            default: throw new IllegalArgumentException("unknown --publish_dir_mode ${mode}")
        }
    }

    /** The OS's words for a failed file operation (FileSystemException's reason), else the exception's message. */
    private static String reason(IOException err) {
        if (err instanceof FileSystemException && ((FileSystemException) err).reason) return ((FileSystemException) err).reason
        String kind = err.class.simpleName
        return err.message ? "${kind}: ${err.message}" : kind
    }

    /**
     * The folder `<outdir>/<plane>` of each failed plane, whatever it holds (an earlier run's results, files of this
     * run published before the plane failed), is removed (`remove`, --remove_stale_planes) or moved to
     * `<plane>.stale` (replacing an older one; removed instead where that name is a plane of this run). Returns
     * plane id -> [note: what was done, for the plane's warnings; aside: the new folder's name, or null]. A folder
     * that cannot be moved or removed is said so in its note (it stops nothing: the summary still gets written).
     */
    static Map<String, Map> setAside(Path outdir, Collection<String> failed, List<String> planeIds, boolean remove) {
        Map<String, Map> done = [:]
        failed.each { String id ->
            Path folder = outdir.resolve(id)
            if (!Files.exists(folder, LinkOption.NOFOLLOW_LINKS)) return
            try {
                done[id] = setAsideOne(outdir, id, planeIds, remove)
            } catch (IOException err) {
                done[id] = [note: "its folder ${folder.toUriString()} could not be set aside (${reason(err)}): what it holds is not a result of this run".toString(), aside: null]
            }
        }
        return done
    }

    /**
     * The files in the folder of each plane that succeeded which this run did not put there (an earlier run's, made
     * with other options: an NWB file, a suite2p folder, a file someone added) are moved into `<plane>.stale`, at the
     * same place inside it (an older `<plane>.stale` is replaced), or removed (`remove`, --remove_stale_planes, or
     * where that name is a plane of this run); folders left empty are removed. `published`: plane id -> the paths
     * this run put into its folder, relative to it. Returns plane id -> [note, aside] as `setAside`, for the planes
     * that had such files.
     */
    static Map<String, Map> setAsideLeftovers(Path outdir, Map<String, Collection<String>> published,
                                              List<String> planeIds, boolean remove) {
        Map<String, Map> done = [:]
        published.each { String id, Collection<String> ours ->
            Path folder = outdir.resolve(id)
            try {
                List<String> leftovers = leftoverFiles(folder, ours)
                if (leftovers) done[id] = setAsideFiles(outdir, id, leftovers, planeIds, remove)
            } catch (IOException err) {
                done[id] = [note: "files of an earlier run in ${folder.toUriString()} could not be set aside (${reason(err)}): they are not results of this run".toString(), aside: null]
            }
        }
        return done
    }

    /** Paths (relative, '/'-separated) of the files under `folder` that are not `ours` nor inside one of `ours`. */
    private static List<String> leftoverFiles(Path folder, Collection<String> ours) {
        if (!Files.isDirectory(folder)) return []
        List<String> found = []
        Files.walk(folder).withCloseable { stream ->
            stream.filter { !Files.isDirectory(it, LinkOption.NOFOLLOW_LINKS) }.forEach { Path file ->
                found << folder.relativize(file).toString().replace(File.separator, '/')
            }
        }
        return found.findAll { String rel -> !ours.any { rel == it || rel.startsWith(it + '/') } }.sort()
    }

    private static Map setAsideFiles(Path outdir, String id, List<String> leftovers, List<String> planeIds,
                                      boolean remove) {
        Path folder = outdir.resolve(id)
        String aside = id + SET_ASIDE
        boolean delete = remove || aside in planeIds
        Path target = outdir.resolve(aside)
        if (!delete && Files.exists(target, LinkOption.NOFOLLOW_LINKS)) FileHelper.deletePath(target)
        leftovers.each { String rel ->
            Path file = folder.resolve(rel)
            if (delete) {
                Files.delete(file)
            } else {
                Files.createDirectories(target.resolve(rel).parent)
                FileHelper.movePath(file, target.resolve(rel))
            }
        }
        removeEmptyFolders(folder)
        String what = "${leftovers.size()} file(s) of an earlier run in ${folder.toUriString()} that this run did not write (${leftovers.take(3).join(', ')}${leftovers.size() > 3 ? ', ...' : ''})"
        return delete
            ? [note: "${what} were removed${remove ? ' (--remove_stale_planes)' : ''}".toString(), aside: null]
            : [note: "${what} were moved to ${target.toUriString()}, which is not a result of this run (--remove_stale_planes removes it)".toString(), aside: aside]
    }

    /** Removes the empty folders under `folder` (deepest first), never `folder` itself. */
    private static void removeEmptyFolders(Path folder) {
        List<Path> dirs = []
        Files.walk(folder).withCloseable { stream ->
            stream.filter { it != folder && Files.isDirectory(it, LinkOption.NOFOLLOW_LINKS) }.forEach { dirs << it }
        }
        dirs.sort { -it.nameCount }.each { Path dir ->
            Files.list(dir).withCloseable { entries -> if (!entries.findAny().isPresent()) Files.delete(dir) }
        }
    }

    private static Map setAsideOne(Path outdir, String id, List<String> planeIds, boolean remove) {
        Path folder = outdir.resolve(id)
        String aside = id + SET_ASIDE
        if (remove || aside in planeIds) {
            FileHelper.deletePath(folder)
            return [note: "its folder ${folder.toUriString()} (results of an earlier run, or of this run before it failed) was removed${remove ? ' (--remove_stale_planes)' : ''}".toString(), aside: null]
        }
        Path target = outdir.resolve(aside)
        if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) FileHelper.deletePath(target)
        FileHelper.movePath(folder, target)
        return [note: "its folder (results of an earlier run, or of this run before it failed) was moved to ${target.toUriString()}, which is not a result of this run (--remove_stale_planes removes it)".toString(), aside: aside]
    }
}

//! Putting a checkout into a run's workspace volume through the Engine API, streamed as a
//! tar archive in bounded chunks, so a remote engine works like the local one and a large
//! checkout is never held in memory whole.

use std::path::Path;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, UploadToContainerOptions};
use bytes::Bytes;

use super::{DockerError, Engine, WORKSPACE_DIR, call_error, volume_mount, with_default_tag};

/// Size of the pieces a workspace is uploaded in.
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;

impl Engine {
    /// Copies `dir` into the volume through the Engine API (an archive upload into a
    /// created, never started container), so a remote engine works like the local one.
    pub async fn upload_dir(
        &self,
        dir: &Path,
        volume: &str,
        image: &str,
        labels: &[(String, String)],
    ) -> Result<(), DockerError> {
        let name = format!("{volume}-upload");
        let body = ContainerCreateBody {
            image: Some(with_default_tag(image)),
            entrypoint: Some(vec!["/bin/true".into()]),
            labels: Some(labels.iter().cloned().collect()),
            host_config: Some(HostConfig {
                mounts: Some(vec![volume_mount(volume)]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(call_error(format!(
                "creating upload container for {volume}"
            )))?;
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        let dir = dir.to_owned();
        let archiver = tokio::task::spawn_blocking(move || {
            let writer = ChunkWriter {
                sender,
                buffer: Vec::with_capacity(UPLOAD_CHUNK_BYTES),
            };
            let mut builder = tar::Builder::new(writer);
            builder.follow_symlinks(false);
            builder.append_dir_all(".", &dir)?;
            builder.into_inner()?.flush_rest()
        });
        let stream = stream_from(receiver);
        let options = UploadToContainerOptions {
            path: WORKSPACE_DIR.into(),
            ..Default::default()
        };
        let uploaded = self
            .docker
            .upload_to_container(&name, Some(options), bollard::body_stream(stream))
            .await
            .map_err(call_error(format!("uploading the workspace into {volume}")));
        let archived = archiver.await;
        self.cleanup.defer(self.clone(), name);
        uploaded?;
        match archived {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(DockerError::Io {
                operation: format!("archiving the workspace for {volume}"),
                source,
            }),
            Err(err) => Err(DockerError::Io {
                operation: "archiving the workspace".into(),
                source: std::io::Error::other(err),
            }),
        }
    }
}

/// A `Write` that hands full chunks to an async receiver, so a tar archive streams to the
/// engine without being held in memory whole.
pub(super) struct ChunkWriter {
    sender: tokio::sync::mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
}

impl ChunkWriter {
    pub(super) fn new(sender: tokio::sync::mpsc::Sender<Bytes>) -> Self {
        Self {
            sender,
            buffer: Vec::with_capacity(UPLOAD_CHUNK_BYTES),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(UPLOAD_CHUNK_BYTES),
        ));
        self.sender
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    pub(super) fn flush_rest(mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= UPLOAD_CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) fn stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

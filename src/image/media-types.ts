/** OCI image-spec and Docker distribution media types. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  ociLayout: 'application/vnd.oci.layout.header.v1+json',

  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociForeignLayerTar: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociForeignLayerGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociForeignLayerZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',

  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestV1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export type MediaTypeName = (typeof MediaType)[keyof typeof MediaType];

export type LayerCompression = 'none' | 'gzip' | 'zstd';

const LAYER_COMPRESSION: Record<string, LayerCompression> = {
  [MediaType.ociLayerTar]: 'none',
  [MediaType.ociForeignLayerTar]: 'none',
  [MediaType.ociLayerGzip]: 'gzip',
  [MediaType.ociForeignLayerGzip]: 'gzip',
  [MediaType.dockerLayerGzip]: 'gzip',
  [MediaType.dockerForeignLayerGzip]: 'gzip',
  [MediaType.ociLayerZstd]: 'zstd',
  [MediaType.ociForeignLayerZstd]: 'zstd',
  [MediaType.dockerLayerZstd]: 'zstd',
};

/** The compression a layer media type declares, or undefined when it is not a layer type runbox can apply. */
export function layerCompression(mediaType: string): LayerCompression | undefined {
  return LAYER_COMPRESSION[mediaType];
}

export function isLayerMediaType(mediaType: string): boolean {
  return mediaType in LAYER_COMPRESSION;
}

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

export function isManifestMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociManifest || mediaType === MediaType.dockerManifest;
}

export function isConfigMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociConfig || mediaType === MediaType.dockerConfig;
}

/** Accept header value for manifest negotiation: every manifest and index type runbox understands. */
export const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest];

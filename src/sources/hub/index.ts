/**
 * The Hugging Face Hub source: downloads into the shared Hugging Face cache (resume, verification, retries,
 * lock, mirrors, offline) and reads the parquet files with the parquet source.
 * @packageDocumentation
 */
export { downloadDatasetFile, downloadDataFiles } from './download.js'
export type { DownloadedFile, DownloadDataFilesOptions, DownloadFileOptions, DownloadProgress } from './download.js'
export { resolveDataFiles } from './resolve.js'
export type { HubDataFile, ResolveDataFilesOptions, ResolvedDataFiles } from './resolve.js'
export { hubParquet } from './hub-parquet.js'
export type { HubDownloadProgress, HubInputs, HubParquetOptions, HubParquetSource } from './hub-parquet.js'
export { pickDataFiles } from './data-files.js'
export type { PickDataFilesOptions } from './data-files.js'
export { HubError } from './errors.js'
export type { HubErrorCode } from './errors.js'
export { hubSettings, hubCacheDir, resolveToken, resolveEndpoint, DEFAULT_ENDPOINT } from './env.js'
export type { HubSettings, HubSettingsInput, TokenSource } from './env.js'
export type { HubOptions } from './metadata.js'
export type { RetryOptions } from './http.js'
export { repoFolderName } from './cache.js'

import { describe, expect, it } from 'vitest'
import { hubParquet } from '../../src/sources/hub/index.js'
import { jsonSource } from '../../src/sources/json.js'
import { parquetSource } from '../../src/sources/parquet.js'

// A wrong option fails when the stage is made, before any work, naming the factory and the option.
describe('source options are checked at construction', () => {
  it('parquetSource', () => {
    expect(() => parquetSource({ path: '' })).toThrow(/parquetSource\(\): option "path" is invalid/)
    expect(() => parquetSource({ path: 'a.parquet', windowRows: 0 })).toThrow(/option "windowRows"/)
    expect(() => parquetSource({ path: 'a.parquet', colums: {} } as never)).toThrow(/parquetSource\(\): unknown option "colums"/)
    expect(() => parquetSource({ path: 'a.parquet', columns: { messages: 'conversations' } })).not.toThrow()
  })
  it('jsonSource', () => {
    expect(() => jsonSource({ path: 'a.jsonl', progressEvery: 1.5 })).toThrow(/jsonSource\(\): option "progressEvery"/)
    expect(() => jsonSource({ path: 'a.jsonl', mediadir: 'x' } as never)).toThrow(/unknown option "mediadir"/)
    expect(() => jsonSource({ path: 'a.jsonl', mapRow: 'sharegpt' } as never)).toThrow(/option "mapRow" is invalid: must be a row mapper function/)
  })
  it('hubParquet', () => {
    expect(() => hubParquet({ repo: 'RLHF-V' })).toThrow(/hubParquet\(\): option "repo" is invalid: must be "owner\/name"/)
    expect(() => hubParquet({ repo: 'llamafactory/RLHF-V', endpoint: 'not a url' })).toThrow(/option "endpoint"/)
    expect(() => hubParquet({ repo: 'llamafactory/RLHF-V', file: [] })).toThrow(/option "file"/)
    expect(() => hubParquet({ repo: 'llamafactory/RLHF-V', revision: 'main' })).not.toThrow()
  })
})

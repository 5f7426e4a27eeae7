import { useRef, useState, type ReactNode } from 'react';
import type { InputFile } from '../../jobs/studio-api';
import { filesFromDrop, filesFromList, reportError } from '../studio';

export interface FileDropProps {
  label: string;
  accept?: string;
  /** Offer a folder picker too (webkitdirectory). */
  folder?: boolean;
  multiple?: boolean;
  onFiles: (files: InputFile[]) => Promise<void> | void;
  testId: string;
  children?: ReactNode;
}

/**
 * Drop zone + pickers. Every error thrown by onFiles goes to the single error surface (toast naming the
 * file); the zone resets so the next drop works.
 */
export function FileDrop({ label, accept, folder, multiple, onFiles, testId, children }: FileDropProps) {
  const [over, setOver] = useState(false);
  const [busy, setBusy] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const dirInput = useRef<HTMLInputElement>(null);

  const handle = async (files: InputFile[]) => {
    if (files.length === 0) return;
    setBusy(true);
    try {
      await onFiles(files);
    } catch (e) {
      reportError(e, files.length === 1 ? files[0]!.path : `${files.length} files`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div
      className={`drop ${over ? 'over' : ''} ${busy ? 'busy' : ''}`}
      data-testid={testId}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        filesFromDrop(e.dataTransfer).then(handle, (err) => reportError(err));
      }}
    >
      <div className="drop-label">{busy ? 'reading…' : label}</div>
      <div className="drop-buttons">
        <button className="secondary" onClick={() => fileInput.current?.click()} disabled={busy}>
          {multiple ? 'Choose files…' : 'Choose file…'}
        </button>
        {folder ? (
          <button className="secondary" onClick={() => dirInput.current?.click()} disabled={busy}>
            Choose folder…
          </button>
        ) : null}
        {children}
      </div>
      <input
        ref={fileInput}
        type="file"
        hidden
        accept={accept}
        multiple={multiple}
        data-testid={`${testId}-input`}
        onChange={(e) => {
          const files = filesFromList(e.target.files);
          e.target.value = '';
          void handle(files);
        }}
      />
      {folder ? (
        <input
          ref={dirInput}
          type="file"
          hidden
          multiple
          {...({ webkitdirectory: '' } as Record<string, string>)}
          onChange={(e) => {
            const files = filesFromList(e.target.files);
            e.target.value = '';
            void handle(files);
          }}
        />
      ) : null}
    </div>
  );
}

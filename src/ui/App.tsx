export function App() {
  return (
    <main>
      <h1>GradOT Studio</h1>
      <p>Offsite-tuning with gradient-preserving emulators, in your browser. Nothing leaves this machine unless you download a file.</p>
    </main>
  );
}
